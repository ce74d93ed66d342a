//! The macOS backend: Virtualization.framework through `bridge-swift`,
//! whose Swift side serves the guest's vsock on the VM's boot socket with
//! the same hybrid-vsock protocol as vhost-device-vsock. Host ports are
//! forwarded over vsock by [`control::serve_forward`]: the framework's NAT
//! forwards nothing.
//!
//! Built and run on macOS only (see bridge-swift/README.md for what was
//! verified where).

use std::io;
use std::time::Duration;

use bridge_swift::{Disk, Share, VmSpec};
use crun_shim_init::params::GuestParams;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::config::{NetworkMode, Protocol};
use super::{Vm, control};

/// How long the guest gets to power off after `poweroff`.
const POWEROFF_GRACE: Duration = Duration::from_secs(30);

/// A running VM and its port forwards.
pub(super) struct Machine {
    vm: bridge_swift::Vm,
    forwards: Vec<JoinHandle<()>>,
}

impl Machine {
    /// Boots the VM and starts its port forwards.
    pub(super) async fn boot(vm: &Vm) -> io::Result<Machine> {
        let c = &vm.config;
        let spec = VmSpec {
            kernel: c.kernel.clone(),
            initramfs: c.initramfs.clone(),
            command_line: format!(
                "console=hvc0 panic=-1 quiet {}",
                GuestParams::from(c).render()
            ),
            cpus: c.cpus,
            memory_bytes: c.memory.0,
            disks: c
                .disks
                .iter()
                .map(|d| Disk {
                    path: d.path.clone(),
                    read_only: d.read_only,
                })
                .collect(),
            shares: c
                .shares
                .iter()
                .enumerate()
                .map(|(i, s)| Share {
                    tag: s.tag(i),
                    path: s.path.clone(),
                    read_only: s.read_only,
                })
                .collect(),
            nat: c.network.mode != NetworkMode::None,
            rosetta: c.rosetta,
            relay_socket: vm.boot_socket(),
            console_log: vm.console_log(),
        };
        let machine = bridge_swift::Vm::start(spec)
            .await
            .map_err(|e| io::Error::other(e.to_string()))?;
        let mut forwards = Vec::new();
        for f in &c.network.port_forwards {
            if f.protocol != Protocol::Tcp {
                warn!(vm = %vm.name, port = f.host_port, "UDP forwards are not supported on macOS");
                continue;
            }
            let listener = tokio::net::TcpListener::bind((f.host_address, f.host_port)).await?;
            info!(vm = %vm.name, host = %listener.local_addr()?, guest = f.guest_port, "forwarding");
            forwards.push(tokio::spawn(control::serve_forward(
                listener,
                vm.vsock_socket(),
                f.guest_port,
            )));
        }
        Ok(Machine {
            vm: machine,
            forwards,
        })
    }

    /// Waits until the VM stops; says why.
    pub(super) async fn wait(&mut self) -> String {
        self.vm.wait().await
    }

    /// Asks the guest to power off, then stops the VM if it has not.
    pub(super) async fn stop(&mut self, vm: &Vm) {
        match tokio::time::timeout(
            Duration::from_secs(3),
            control::poweroff(&vm.vsock_socket()),
        )
        .await
        {
            Ok(Ok(())) => {
                if tokio::time::timeout(POWEROFF_GRACE, self.vm.wait())
                    .await
                    .is_err()
                {
                    warn!(vm = %vm.name, "the guest did not power off in time");
                }
            }
            _ => warn!(vm = %vm.name, "the guest's init did not answer poweroff"),
        }
        self.kill().await;
    }

    /// Stops the VM at once.
    pub(super) async fn kill(&mut self) {
        for forward in self.forwards.drain(..) {
            forward.abort();
        }
        if let Err(e) = self.vm.stop().await {
            warn!(error = %e, "stopping the VM");
        }
    }
}
