//! What a container created from an image takes from the image's config,
//! the way Docker merges them.

use crun_shim_images::ImageConfig;

use crate::error::{Error, Result};
use crate::model::ContainerConfig;

/// Fills in `config` from the image's config:
/// - no command: the image's entrypoint, followed by the request's args,
///   or by the image's cmd when the request has none; a command in the
///   request replaces both (the image's cmd is not appended to it);
/// - environment: the image's, then the request's (a key set by both takes
///   the request's value);
/// - working directory, user and stop signal: the request's, else the
///   image's;
/// - labels: the image's, under the request's.
pub fn inherit(config: &mut ContainerConfig, image: &ImageConfig) -> Result<()> {
    if config.command.is_empty() {
        config.command = image.entrypoint.clone();
        if config.args.is_empty() {
            config.args = image.cmd.clone();
        }
    }
    if config.command.is_empty() && config.args.is_empty() {
        return Err(Error::InvalidArgument(
            "no command: the request has none, and the image neither an entrypoint nor a cmd"
                .into(),
        ));
    }
    if config.command.is_empty() {
        // Only a cmd: its first word is the program.
        config.command = vec![config.args.remove(0)];
    }
    let key = |kv: &str| kv.split_once('=').map_or(kv, |(k, _)| k).to_string();
    let overridden: std::collections::HashSet<String> =
        config.env.iter().map(|kv| key(kv)).collect();
    let mut env: Vec<String> = image
        .env
        .iter()
        .filter(|kv| !overridden.contains(&key(kv)))
        .cloned()
        .collect();
    env.append(&mut config.env);
    config.env = env;
    if config.working_dir.is_none() && !image.working_dir.is_empty() {
        config.working_dir = Some(image.working_dir.clone());
    }
    if config.user.is_none() && !image.user.is_empty() {
        config.user = Some(image.user.clone());
    }
    if config.stop_signal.is_none() && !image.stop_signal.is_empty() {
        config.stop_signal = Some(image.stop_signal.clone());
    }
    for (k, v) in &image.labels {
        config.labels.entry(k.clone()).or_insert_with(|| v.clone());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> ImageConfig {
        ImageConfig {
            entrypoint: vec!["/entry".into()],
            cmd: vec!["serve".into(), "--port=80".into()],
            env: vec!["PATH=/usr/bin:/bin".into(), "MODE=prod".into()],
            working_dir: "/srv".into(),
            user: "www".into(),
            stop_signal: "SIGQUIT".into(),
            labels: [("a".to_string(), "image".to_string())].into(),
            ..Default::default()
        }
    }

    #[test]
    fn docker_merge_rules() {
        // Nothing asked: entrypoint + cmd, and the image's settings.
        let mut c = ContainerConfig::default();
        inherit(&mut c, &image()).unwrap();
        assert_eq!(c.command, ["/entry"]);
        assert_eq!(c.args, ["serve", "--port=80"]);
        assert_eq!(c.working_dir.as_deref(), Some("/srv"));
        assert_eq!(c.user.as_deref(), Some("www"));
        assert_eq!(c.stop_signal.as_deref(), Some("SIGQUIT"));

        // Args only: they replace cmd, after the entrypoint.
        let mut c = ContainerConfig {
            args: vec!["debug".into()],
            ..Default::default()
        };
        inherit(&mut c, &image()).unwrap();
        assert_eq!(
            (c.command.as_slice(), c.args.as_slice()),
            (&["/entry".to_string()][..], &["debug".to_string()][..])
        );

        // A command: no entrypoint, no cmd.
        let mut c = ContainerConfig {
            command: vec!["sh".into()],
            env: vec!["MODE=dev".into(), "X=1".into()],
            labels: [("a".to_string(), "mine".to_string())].into(),
            working_dir: Some("/tmp".into()),
            ..Default::default()
        };
        inherit(&mut c, &image()).unwrap();
        assert_eq!(c.command, ["sh"]);
        assert!(c.args.is_empty());
        assert_eq!(c.env, ["PATH=/usr/bin:/bin", "MODE=dev", "X=1"]);
        assert_eq!(c.working_dir.as_deref(), Some("/tmp"));
        assert_eq!(c.labels["a"], "mine");

        // Cmd without entrypoint: cmd's first word is the program.
        let mut c = ContainerConfig::default();
        let only_cmd = ImageConfig {
            cmd: vec!["/bin/sh".into(), "-c".into(), "true".into()],
            ..Default::default()
        };
        inherit(&mut c, &only_cmd).unwrap();
        assert_eq!(c.command, ["/bin/sh"]);
        assert_eq!(c.args, ["-c", "true"]);

        // Nothing to run at all.
        let mut c = ContainerConfig::default();
        assert!(matches!(
            inherit(&mut c, &ImageConfig::default()),
            Err(Error::InvalidArgument(_))
        ));
    }
}
