//! Image references as the CLI takes them: `oci:DIR[:TAG]`, `docker-archive:FILE[:NAME:TAG]`,
//! and `docker://HOST[:PORT]/REPO[:TAG|@DIGEST]`.

use std::fmt;
use std::path::PathBuf;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageRef {
    /// An OCI image layout directory, with an optional tag (`org.opencontainers.image.ref.name`).
    OciLayout { dir: PathBuf, tag: Option<String> },
    /// A `docker save` tarball, with an optional `repo:tag` to pick one of several images.
    DockerArchive { file: PathBuf, tag: Option<String> },
    /// An image in a registry, as `host[:port]/repo[:tag|@digest]`.
    Registry { reference: String },
}

impl ImageRef {
    pub fn parse(s: &str) -> anyhow::Result<ImageRef> {
        if let Some(rest) = s.strip_prefix("oci:") {
            // The tag is after the last ':' unless that ':' is part of the path.
            let (dir, tag) = match rest.rsplit_once(':') {
                Some((d, t)) if !t.contains('/') && !d.is_empty() => (d, Some(t.to_string())),
                _ => (rest, None),
            };
            if dir.is_empty() {
                anyhow::bail!("image reference {s:?}: oci: needs a directory");
            }
            if tag.as_deref() == Some("") {
                anyhow::bail!("image reference {s:?}: empty tag");
            }
            return Ok(ImageRef::OciLayout { dir: dir.into(), tag });
        }
        if let Some(rest) = s.strip_prefix("docker-archive:") {
            let (file, tag) = match rest.split_once(':') {
                Some((f, t)) if !t.is_empty() => (f, Some(t.to_string())),
                _ => (rest, None),
            };
            if file.is_empty() {
                anyhow::bail!("image reference {s:?}: docker-archive: needs a file");
            }
            return Ok(ImageRef::DockerArchive { file: file.into(), tag });
        }
        if let Some(rest) = s.strip_prefix("docker://") {
            if rest.is_empty() || !rest.contains('/') {
                anyhow::bail!("image reference {s:?}: expected docker://host[:port]/repo[:tag|@digest]");
            }
            return Ok(ImageRef::Registry { reference: rest.to_string() });
        }
        anyhow::bail!(
            "image reference {s:?}: expected oci:DIR[:TAG], docker-archive:FILE or docker://HOST/REPO[:TAG]"
        )
    }

    /// A short name for the image, used as the default app name.
    pub fn short_name(&self) -> String {
        let raw = match self {
            ImageRef::OciLayout { dir, tag } => tag
                .clone()
                .filter(|t| t != "latest")
                .or_else(|| dir.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_default(),
            ImageRef::DockerArchive { file, tag } => tag
                .as_deref()
                .map(|t| t.split(':').next().unwrap_or(t).rsplit('/').next().unwrap_or(t).to_string())
                .or_else(|| file.file_stem().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_default(),
            ImageRef::Registry { reference } => {
                let no_digest = reference.split('@').next().unwrap_or(reference);
                let repo = no_digest.rsplit('/').next().unwrap_or(no_digest);
                repo.split(':').next().unwrap_or(repo).to_string()
            }
        };
        crate::runtime::sanitize_name(&raw)
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageRef::OciLayout { dir, tag: Some(t) } => write!(f, "oci:{}:{t}", dir.display()),
            ImageRef::OciLayout { dir, tag: None } => write!(f, "oci:{}", dir.display()),
            ImageRef::DockerArchive { file, tag: Some(t) } => {
                write!(f, "docker-archive:{}:{t}", file.display())
            }
            ImageRef::DockerArchive { file, tag: None } => write!(f, "docker-archive:{}", file.display()),
            ImageRef::Registry { reference } => write!(f, "docker://{reference}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_kind() {
        assert_eq!(
            ImageRef::parse("oci:/tmp/img:v1").unwrap(),
            ImageRef::OciLayout { dir: "/tmp/img".into(), tag: Some("v1".into()) }
        );
        assert_eq!(
            ImageRef::parse("oci:img").unwrap(),
            ImageRef::OciLayout { dir: "img".into(), tag: None }
        );
        assert_eq!(
            ImageRef::parse("docker-archive:a.tar").unwrap(),
            ImageRef::DockerArchive { file: "a.tar".into(), tag: None }
        );
        assert_eq!(
            ImageRef::parse("docker-archive:a.tar:hello:latest").unwrap(),
            ImageRef::DockerArchive { file: "a.tar".into(), tag: Some("hello:latest".into()) }
        );
        assert!(matches!(ImageRef::parse("docker://127.0.0.1:5000/hello:1").unwrap(), ImageRef::Registry { .. }));
        assert!(ImageRef::parse("hello").is_err());
        assert!(ImageRef::parse("oci:").is_err());
    }

    #[test]
    fn short_names() {
        assert_eq!(ImageRef::parse("oci:/x/hello:latest").unwrap().short_name(), "hello");
        assert_eq!(ImageRef::parse("oci:/x/store:walker").unwrap().short_name(), "walker");
        assert_eq!(ImageRef::parse("docker://h:5000/apps/hello:1").unwrap().short_name(), "hello");
        assert_eq!(ImageRef::parse("docker-archive:/t/h.tar").unwrap().short_name(), "h");
    }
}
