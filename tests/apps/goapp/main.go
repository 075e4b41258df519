// The Go test app: goroutines with a WaitGroup, a channel pipeline, a select against
// time.After (both ways), time.Sleep, a mutex shared by many goroutines, and runtime
// facts. Prints only deterministic results; exits 4.
package main

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"sync"
	"time"
)

func main() {
	// Goroutines and a WaitGroup: each writes its own slot.
	var wg sync.WaitGroup
	squares := make([]int, 100)
	for i := range squares {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			squares[i] = i * i
		}(i)
	}
	wg.Wait()
	sum := 0
	for _, s := range squares {
		sum += s
	}
	fmt.Println("waitgroup: sum of squares 0..99 =", sum)

	// A pipeline: generate -> square -> sum over unbuffered and buffered channels.
	gen := make(chan int)
	sq := make(chan int, 4)
	go func() {
		for i := 1; i <= 1000; i++ {
			gen <- i
		}
		close(gen)
	}()
	go func() {
		for v := range gen {
			sq <- v * v
		}
		close(sq)
	}()
	total := 0
	for v := range sq {
		total += v
	}
	fmt.Println("pipeline: sum of squares 1..1000 =", total)

	// A fan-in of workers over a shared counter behind a mutex.
	var mu sync.Mutex
	counter := 0
	results := make(chan int, 8)
	for w := 0; w < 8; w++ {
		go func(w int) {
			for i := 0; i < 10000; i++ {
				mu.Lock()
				counter++
				mu.Unlock()
			}
			results <- w
		}(w)
	}
	var ids []int
	for i := 0; i < 8; i++ {
		ids = append(ids, <-results)
	}
	sort.Ints(ids)
	fmt.Println("mutex: counter =", counter, "workers", ids)

	// select: a channel that never sends loses to time.After.
	never := make(chan int)
	start := time.Now()
	select {
	case <-never:
		fmt.Println("select: never channel fired?!")
	case <-time.After(30 * time.Millisecond):
		fmt.Println("select: timed out")
	}
	fmt.Println("select: waited at least 30ms:", time.Since(start) >= 30*time.Millisecond)

	// select: a ready channel wins over a long time.After.
	ready := make(chan string, 1)
	go func() { ready <- "hello" }()
	select {
	case s := <-ready:
		fmt.Println("select: received", s)
	case <-time.After(10 * time.Second):
		fmt.Println("select: timed out?!")
	}

	// time.Sleep.
	start = time.Now()
	time.Sleep(50 * time.Millisecond)
	fmt.Println("sleep: at least 50ms:", time.Since(start) >= 50*time.Millisecond)

	// A ticker, three ticks.
	tick := time.NewTicker(10 * time.Millisecond)
	for i := 0; i < 3; i++ {
		<-tick.C
	}
	tick.Stop()
	fmt.Println("ticker: three ticks")

	// Many goroutines blocked at once, then released by closing a channel.
	gate := make(chan struct{})
	var done sync.WaitGroup
	for i := 0; i < 1000; i++ {
		done.Add(1)
		go func() {
			defer done.Done()
			<-gate
		}()
	}
	close(gate)
	done.Wait()
	fmt.Println("gate: 1000 goroutines released")

	runtime.GC()
	fmt.Println("runtime:", runtime.GOOS, runtime.GOARCH)
	os.Exit(4)
}
