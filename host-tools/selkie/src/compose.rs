//! `selkie compose`: a compose file (the compose-spec subset selkie supports) to one seL4
//! image of all its services.
//!
//! Supported: top-level `name`, `services`, `networks` (each with `x-msg-server`), and per
//! service `image` (every reference selkie takes), `command`, `entrypoint` (string or
//! list), `environment` (list or map), `working_dir`, `user`, `depends_on` (start order; in
//! the map form, `condition: service_completed_successfully` holds a service back until
//! that one has exited with status 0, and `service_started` is the default), `networks`
//! (list or map), `labels` (list or map: the selkie and koskit spec labels).
//! Any other field is an error that names it; `x-` extensions are allowed where the spec
//! allows them.

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// A string or a list of strings (`command: "a b"` is split on whitespace, as compose does
/// for the shell-less form).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Words {
    One(String),
    Many(Vec<String>),
}

impl Words {
    fn list(self) -> Vec<String> {
        match self {
            Words::One(s) => s.split_whitespace().map(String::from).collect(),
            Words::Many(v) => v,
        }
    }
}

/// A list of `K=V` or a map (environment, labels).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Pairs {
    List(Vec<String>),
    Map(BTreeMap<String, Option<serde_yaml::Value>>),
}

impl Pairs {
    fn pairs(self, what: &str) -> Result<Vec<(String, String)>> {
        match self {
            Pairs::List(v) => v
                .into_iter()
                .map(|s| match s.split_once('=') {
                    Some((k, v)) => Ok((k.to_string(), v.to_string())),
                    None => bail!("{what} entry {s:?} has no '='"),
                })
                .collect(),
            Pairs::Map(m) => m
                .into_iter()
                .map(|(k, v)| {
                    let v = match v {
                        None => String::new(),
                        Some(serde_yaml::Value::String(s)) => s,
                        Some(serde_yaml::Value::Number(n)) => n.to_string(),
                        Some(serde_yaml::Value::Bool(b)) => b.to_string(),
                        Some(other) => bail!("{what} {k}: {other:?} is not a string, number or boolean"),
                    };
                    Ok((k, v))
                })
                .collect(),
        }
    }
}

/// A list of names or a map whose keys are the names (networks).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Names {
    List(Vec<String>),
    Map(BTreeMap<String, Option<serde_yaml::Value>>),
}

impl Names {
    fn names(self) -> Vec<String> {
        match self {
            Names::List(v) => v,
            Names::Map(m) => m.into_keys().collect(),
        }
    }
}

/// `depends_on`: a list of names, or a map from names to how to depend on them.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Depends {
    List(Vec<String>),
    Map(BTreeMap<String, Option<RawDependency>>),
}

#[derive(Debug, Clone, Deserialize)]
struct RawDependency {
    condition: Option<String>,
    /// Compose restarts the service when this one is updated; an image is built once.
    #[allow(dead_code)]
    restart: Option<bool>,
    /// Whether the dependency must exist: in one image, every service does.
    #[allow(dead_code)]
    required: Option<bool>,
    #[serde(flatten)]
    other: BTreeMap<String, serde_yaml::Value>,
}

impl Depends {
    /// Every dependency's name, and whether the service waits for it to complete
    /// successfully (else only for it to start).
    fn resolve(self, at: &str) -> Result<Vec<(String, bool)>> {
        match self {
            Depends::List(v) => Ok(v.into_iter().map(|n| (n, false)).collect()),
            Depends::Map(m) => m
                .into_iter()
                .map(|(n, d)| {
                    let Some(d) = d else { return Ok((n, false)) };
                    unsupported(&d.other, &format!("{at}.depends_on.{n}"))?;
                    match d.condition.as_deref() {
                        None | Some("service_started") => Ok((n, false)),
                        Some("service_completed_successfully") => Ok((n, true)),
                        Some("service_healthy") => {
                            bail!("{at}.depends_on.{n}: condition `service_healthy` is not supported by selkie (it has no healthchecks)")
                        }
                        Some(c) => bail!("{at}.depends_on.{n}: unknown condition `{c}`"),
                    }
                })
                .collect(),
        }
    }
}

#[derive(Debug, Deserialize)]
struct RawService {
    image: Option<String>,
    command: Option<Words>,
    entrypoint: Option<Words>,
    environment: Option<Pairs>,
    working_dir: Option<String>,
    user: Option<String>,
    depends_on: Option<Depends>,
    networks: Option<Names>,
    labels: Option<Pairs>,
    #[serde(flatten)]
    other: BTreeMap<String, serde_yaml::Value>,
}

#[derive(Debug, Deserialize)]
struct RawNetwork {
    #[serde(rename = "x-msg-server")]
    msg_server: Option<String>,
    #[serde(flatten)]
    other: BTreeMap<String, serde_yaml::Value>,
}

#[derive(Debug, Deserialize)]
struct RawFile {
    name: Option<String>,
    services: BTreeMap<String, RawService>,
    networks: Option<BTreeMap<String, Option<RawNetwork>>>,
    #[serde(flatten)]
    other: BTreeMap<String, serde_yaml::Value>,
}

/// One service, with what it overrides in its image's config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub name: String,
    pub image: String,
    pub command: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub environment: Vec<(String, String)>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub labels: Vec<(String, String)>,
    /// Its networks; `default` when the file names none for it.
    pub networks: Vec<String>,
    /// The services that must have exited with status 0 before it starts
    /// (`condition: service_completed_successfully`).
    pub after: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    pub name: String,
    pub msg_server: Option<String>,
}

/// A checked compose file: its services in start order (every service after those it
/// depends on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    pub name: Option<String>,
    pub services: Vec<Service>,
    pub networks: Vec<Network>,
}

fn unsupported(other: &BTreeMap<String, serde_yaml::Value>, at: &str) -> Result<()> {
    match other.keys().find(|k| !k.starts_with("x-")) {
        Some(k) => bail!("{at}: `{k}` is not supported by selkie"),
        None => Ok(()),
    }
}

impl Project {
    /// The service called `name` (for `--exit-code-from`).
    pub fn service(&self, name: &str) -> Result<&Service> {
        self.services.iter().find(|s| s.name == name).with_context(|| {
            format!("no service {name:?} (services: {})", self.services.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", "))
        })
    }

    pub fn load(path: &Path) -> Result<Project> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Project::parse(&text).with_context(|| format!("{}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Project> {
        let raw: RawFile = serde_yaml::from_str(text).context("not a compose file")?;
        unsupported(&raw.other, "top level")?;
        let mut networks = Vec::new();
        for (name, n) in raw.networks.unwrap_or_default() {
            let msg_server = match n {
                Some(n) => {
                    unsupported(&n.other, &format!("networks.{name}"))?;
                    n.msg_server
                }
                None => None,
            };
            networks.push(Network { name, msg_server });
        }
        let known: BTreeSet<&str> = networks.iter().map(|n| n.name.as_str()).collect();
        let mut services = BTreeMap::new();
        let mut deps: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, s) in raw.services {
            let at = format!("services.{name}");
            unsupported(&s.other, &at)?;
            let image = s.image.with_context(|| format!("{at}: no `image` (selkie does not build)"))?;
            let nets = s.networks.map(Names::names).unwrap_or_else(|| vec!["default".to_string()]);
            for n in &nets {
                if n != "default" && !known.contains(n.as_str()) {
                    bail!("{at}: network `{n}` is not declared under top-level `networks`");
                }
            }
            if let Some(w) = &s.working_dir {
                if !w.starts_with('/') {
                    bail!("{at}.working_dir {w:?} is not absolute");
                }
            }
            let depends = s.depends_on.map(|d| d.resolve(&at)).transpose()?.unwrap_or_default();
            deps.insert(name.clone(), depends.iter().map(|(n, _)| n.clone()).collect());
            let after = depends.into_iter().filter(|(_, done)| *done).map(|(n, _)| n).collect();
            services.insert(
                name.clone(),
                Service {
                    name: name.clone(),
                    image,
                    command: s.command.map(Words::list),
                    entrypoint: s.entrypoint.map(Words::list),
                    environment: s.environment.map(|p| p.pairs(&format!("{at}.environment"))).transpose()?.unwrap_or_default(),
                    working_dir: s.working_dir,
                    user: s.user,
                    labels: s.labels.map(|p| p.pairs(&format!("{at}.labels"))).transpose()?.unwrap_or_default(),
                    networks: nets,
                    after,
                },
            );
        }
        if services.is_empty() {
            bail!("no services");
        }
        // Start order: depth-first over depends_on, refusing cycles and unknown names.
        let mut order = Vec::new();
        let mut state: BTreeMap<String, bool> = BTreeMap::new(); // false: visiting, true: done
        fn visit(n: &str, deps: &BTreeMap<String, Vec<String>>, state: &mut BTreeMap<String, bool>, order: &mut Vec<String>) -> Result<()> {
            match state.get(n) {
                Some(true) => return Ok(()),
                Some(false) => bail!("services.{n}.depends_on: a cycle"),
                None => {}
            }
            state.insert(n.to_string(), false);
            for d in &deps[n] {
                if !deps.contains_key(d) {
                    bail!("services.{n}.depends_on: no service `{d}`");
                }
                visit(d, deps, state, order)?;
            }
            state.insert(n.to_string(), true);
            order.push(n.to_string());
            Ok(())
        }
        for n in deps.keys() {
            visit(n, &deps, &mut state, &mut order)?;
        }
        let services = order.into_iter().map(|n| services.remove(&n).expect("every visited name is a service")).collect();
        Ok(Project { name: raw.name, services, networks })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = r#"
name: example_compose
services:
  client:
    image: kos:apps/client
    command: ["client", "5050"]
    depends_on:
      - server
    networks:
      back-tier:
  server:
    image: kos:apps/server
    command: ["server", "5050"]
    environment:
      MODE: fast
      LEVEL: 3
    labels:
      - org.selkie.app.priority=120
    networks:
      back-tier:
networks:
  back-tier:
    x-msg-server: "Poukai.msg0"
"#;

    #[test]
    fn the_seed_file_parses_in_start_order() {
        let p = Project::parse(SEED).unwrap();
        assert_eq!(p.name.as_deref(), Some("example_compose"));
        let names: Vec<_> = p.services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["server", "client"], "server first: the client depends on it");
        let server = &p.services[0];
        assert_eq!(server.command.as_deref(), Some(&["server".to_string(), "5050".into()][..]));
        assert_eq!(server.environment, [("LEVEL".to_string(), "3".to_string()), ("MODE".into(), "fast".into())]);
        assert_eq!(server.labels, [("org.selkie.app.priority".to_string(), "120".to_string())]);
        assert_eq!(server.networks, ["back-tier"]);
        assert_eq!(p.networks, [Network { name: "back-tier".into(), msg_server: Some("Poukai.msg0".into()) }]);
    }

    #[test]
    fn a_completed_dependency_holds_a_service_back() {
        let p = Project::parse(
            "services:\n  sub:\n    image: x\n    depends_on:\n      pub:\n        condition: service_completed_successfully\n        restart: true\n      broker:\n        condition: service_started\n  pub:\n    image: x\n    depends_on: {broker: null}\n  broker:\n    image: x\n",
        )
        .unwrap();
        let names: Vec<_> = p.services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["broker", "pub", "sub"]);
        assert_eq!(p.services[2].after, ["pub"], "only the completion is waited for");
        assert!(p.services[0].after.is_empty() && p.services[1].after.is_empty());
        let e = |c: &str| format!("{:#}", Project::parse(&format!("services:\n  a:\n    image: x\n    depends_on:\n      b: {c}\n  b:\n    image: y\n")).unwrap_err());
        assert!(e("{condition: service_healthy}").contains("services.a.depends_on.b: condition `service_healthy` is not supported"));
        assert!(e("{condition: soon}").contains("unknown condition `soon`"));
        assert!(e("{when: now}").contains("services.a.depends_on.b: `when` is not supported"));
    }

    #[test]
    fn unsupported_fields_and_bad_references_are_named() {
        let e = |t: &str| format!("{:#}", Project::parse(t).unwrap_err());
        assert!(e("services:\n  a:\n    image: x\n    ports: [\"80:80\"]\n").contains("services.a: `ports` is not supported"));
        assert!(e("services:\n  a:\n    image: x\nvolumes: {}\n").contains("top level: `volumes` is not supported"));
        assert!(e("services:\n  a:\n    image: x\n    networks: [nope]\n").contains("network `nope` is not declared"));
        assert!(e("services:\n  a:\n    image: x\n    depends_on: [b]\n").contains("no service `b`"));
        assert!(e("services:\n  a:\n    image: x\n    depends_on: [b]\n  b:\n    image: y\n    depends_on: [a]\n").contains("a cycle"));
        assert!(e("services:\n  a:\n    build: .\n").contains("`build` is not supported"));
        assert!(e("networks:\n  n:\n    driver: bridge\nservices:\n  a:\n    image: x\n").contains("networks.n: `driver` is not supported"));
        // x- extensions are fine.
        assert!(Project::parse("x-common: 1\nservices:\n  a:\n    image: x\n    x-note: hi\n").is_ok());
    }
}
