//! Images: pull (a progress bar per layer), images, rmi.

use std::collections::HashMap;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use libcrun_shim::{ContainerRuntime, LayerState, PullOptions, PullProgress};

use super::Result;
use crate::args::{Format, ImagesArgs, PullArgs, RmiArgs};
use crate::output::{Table, ago, bytes, print_json, short_id};

/// The bars of a pull, one per layer.
struct Bars {
    multi: MultiProgress,
    layers: HashMap<String, ProgressBar>,
    style: ProgressStyle,
}

impl Bars {
    fn new(quiet: bool) -> Bars {
        let target = if quiet {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        Bars {
            multi: MultiProgress::with_draw_target(target),
            layers: HashMap::new(),
            style: ProgressStyle::with_template(
                "{prefix} {msg:>14} [{bar:30}] {bytes:>10} / {total_bytes:<10}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        }
    }

    fn update(&mut self, progress: &PullProgress) {
        for layer in &progress.layers {
            let bar = self.layers.entry(layer.digest.clone()).or_insert_with(|| {
                let bar = self.multi.add(ProgressBar::new(layer.total_bytes));
                bar.set_style(self.style.clone());
                bar.set_prefix(short_id(&layer.digest));
                bar
            });
            bar.set_length(layer.total_bytes);
            bar.set_position(layer.downloaded_bytes);
            bar.set_message(layer.state.to_string());
            if matches!(layer.state, LayerState::Done | LayerState::AlreadyExists) {
                bar.set_position(layer.total_bytes);
                bar.finish();
            }
        }
    }
}

/// `pull`.
pub async fn pull(rt: &ContainerRuntime, a: PullArgs) -> Result {
    let mut bars = Bars::new(a.quiet);
    let options = PullOptions {
        platform: a.platform,
        ..Default::default()
    };
    let image = rt
        .images()
        .pull_with(&a.reference, options, |p| bars.update(p))
        .await;
    let _ = bars.multi.clear();
    let image = image?;
    let name = image.references.first().cloned().unwrap_or(a.reference);
    println!("{name} {} ({})", short_id(&image.id), bytes(image.size));
    Ok(0)
}

/// `images`.
pub async fn images(rt: &ContainerRuntime, a: ImagesArgs) -> Result {
    let images = rt.images().list().await?;
    if a.quiet {
        for image in &images {
            println!("{}", short_id(&image.id));
        }
        return Ok(0);
    }
    if a.format.format == Format::Json {
        print_json(&images)?;
        return Ok(0);
    }
    let mut table = Table::new(&["REFERENCE", "IMAGE ID", "SIZE", "CREATED", "AGENT"]);
    for image in &images {
        let references = if image.references.is_empty() {
            vec!["<none>".to_string()]
        } else {
            image.references.clone()
        };
        for reference in references {
            table.row(vec![
                reference,
                short_id(&image.id),
                bytes(image.size),
                ago(image.created),
                image.agent.clone(),
            ]);
        }
    }
    table.print()?;
    Ok(0)
}

/// `rmi`.
pub async fn rmi(rt: &ContainerRuntime, a: RmiArgs) -> Result {
    let store = rt.images();
    let mut code = 0;
    for reference in &a.references {
        match store.remove(reference, a.force).await {
            Ok(removed) => {
                for r in removed.untagged {
                    println!("Untagged: {r}");
                }
                for d in removed.deleted {
                    println!("Deleted: {d}");
                }
            }
            Err(e) => code = super::report(&e.into()),
        }
    }
    Ok(code)
}
