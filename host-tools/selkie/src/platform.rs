//! Image platform selection (`os/arch[/variant]`), as docker and skopeo do it.

use std::fmt;

/// A requested or offered image platform.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
}

impl Default for Platform {
    fn default() -> Self {
        Platform { os: "linux".into(), arch: "arm64".into(), variant: None }
    }
}

impl Platform {
    /// Parses `os/arch[/variant]`.
    pub fn parse(s: &str) -> anyhow::Result<Platform> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [os, arch] if !os.is_empty() && !arch.is_empty() => {
                Ok(Platform { os: os.to_string(), arch: arch.to_string(), variant: None })
            }
            [os, arch, v] if !os.is_empty() && !arch.is_empty() && !v.is_empty() => Ok(Platform {
                os: os.to_string(),
                arch: arch.to_string(),
                variant: Some(v.to_string()),
            }),
            _ => anyhow::bail!("platform {s:?} is not os/arch[/variant], e.g. linux/arm64"),
        }
    }

    /// Whether an offered platform satisfies this request: a request without a variant
    /// takes any variant; arm64 treats a missing variant as v8.
    pub fn matches(&self, os: &str, arch: &str, variant: Option<&str>) -> bool {
        if self.os != os || normalize_arch(&self.arch) != normalize_arch(arch) {
            return false;
        }
        match &self.variant {
            None => true,
            Some(want) => {
                let have = variant.unwrap_or(if normalize_arch(arch) == "arm64" { "v8" } else { "" });
                want == have
            }
        }
    }
}

fn normalize_arch(a: &str) -> &str {
    match a {
        "aarch64" => "arm64",
        "x86_64" => "amd64",
        other => other,
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_matches() {
        let p = Platform::parse("linux/arm64").unwrap();
        assert!(p.matches("linux", "arm64", Some("v8")));
        assert!(p.matches("linux", "aarch64", None));
        assert!(!p.matches("linux", "amd64", None));
        let v = Platform::parse("linux/arm64/v8").unwrap();
        assert!(v.matches("linux", "arm64", None));
        assert!(!Platform::parse("linux/arm/v7").unwrap().matches("linux", "arm", Some("v6")));
        assert!(Platform::parse("linux").is_err());
        assert!(Platform::parse("linux//v8").is_err());
    }
}
