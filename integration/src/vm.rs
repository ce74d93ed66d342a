//! A Linux guest under QEMU for tests: its image (the base that
//! `integration/setup.sh` caches, plus the binaries under test), and a real
//! `crun-shimd` running it as an agent.
//!
//! A test binary boots its VM once ([`shared`]) and its VM tests take
//! turns ([`lease`]): one TCG guest at a time is what two cores can carry,
//! and a test then owns the agent while it runs. The VM stops when the
//! test binary exits (the daemon is stopped at exit, and dies with the
//! thread that started it in any case).

use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant, UNIX_EPOCH};

use tonic::transport::Channel;

use crate::host::HostProcess;

/// The environment variable naming the guest's cached base
/// (`integration/setup.d/40-vm.sh` prints it).
pub const GUEST_BASE_ENV: &str = "CRUN_SHIM_GUEST_BASE";
/// How long a boot may take here (TCG on a loaded two-core machine).
const BOOT_TIMEOUT: Duration = Duration::from_secs(240);

/// The kernel and initramfs of the guest.
#[derive(Debug, Clone)]
pub struct GuestImage {
    /// The kernel.
    pub kernel: PathBuf,
    /// The initramfs: the base, then the binaries under test.
    pub initramfs: PathBuf,
    /// The kernel's release (what `uname -r` says in the guest).
    pub kernel_release: String,
}

/// The guest image for the workspace's binaries: built by
/// `docker/build-guest.sh image` into `PROFILE/guest`, reused while the
/// binaries and the base are unchanged.
pub fn guest_image() -> io::Result<GuestImage> {
    let base = PathBuf::from(std::env::var_os(GUEST_BASE_ENV).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("{GUEST_BASE_ENV} is not set: run `eval \"$(integration/setup.sh)\"` first"),
        )
    })?);
    let bins: Vec<PathBuf> = ["crun-shim-init", "crun-shim-agent", "crun-shim-monitor"]
        .iter()
        .map(|b| crate::binary(b))
        .collect();
    let bin_dir = bins[0].parent().expect("a directory").to_path_buf();
    let out = bin_dir.join("guest");
    std::fs::create_dir_all(&out)?;
    let mut key = format!("{}\n", base.display());
    for bin in &bins {
        let meta = std::fs::metadata(bin)?;
        let mtime = meta
            .modified()?
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let _ = writeln!(key, "{} {} {}", bin.display(), meta.len(), mtime.as_nanos());
    }
    let lock = std::fs::File::create(out.join(".lock"))?;
    // SAFETY: flock on a descriptor this function owns; released on close.
    if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let image = GuestImage {
        kernel: out.join("vmlinuz"),
        initramfs: out.join("initramfs.img"),
        kernel_release: std::fs::read_to_string(base.join("kernel-release"))?
            .trim()
            .to_string(),
    };
    let built = std::fs::read_to_string(out.join(".key")).unwrap_or_default();
    if built != key || !image.initramfs.exists() {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docker/build-guest.sh");
        let output = std::process::Command::new(script)
            .arg("image")
            .arg("--base")
            .arg(&base)
            .arg("--bin")
            .arg(&bin_dir)
            .arg("--out")
            .arg(&out)
            .output()?;
        if !output.status.success() {
            return Err(io::Error::other(format!(
                "docker/build-guest.sh image: {}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            )));
        }
        std::fs::write(out.join(".key"), key)?;
    }
    Ok(image)
}

/// What a test VM gets.
#[derive(Debug, Clone)]
pub struct VmOptions {
    /// The VM's (and its agent's) name.
    pub name: String,
    /// Memory, e.g. `"1GiB"`.
    pub memory: String,
    /// Virtual CPUs.
    pub cpus: u32,
    /// Host directories shared at the same path in the guest.
    pub shares: Vec<PathBuf>,
    /// A state disk (created, 2 GiB sparse) holding the agent's state.
    pub state_disk: Option<PathBuf>,
    /// The network: `"none"`, `"restricted"` or `"nat"`.
    pub network: String,
    /// (host port on 127.0.0.1, guest port) pairs.
    pub port_forwards: Vec<(u16, u16)>,
    /// (guest port on 10.0.2.100, host address) pairs.
    pub guest_forwards: Vec<(u16, SocketAddr)>,
    /// Registries the guest pulls from over plain HTTP.
    pub insecure_registries: Vec<String>,
    /// Whether the daemon also runs its local agent.
    pub local_agent: bool,
}

impl Default for VmOptions {
    fn default() -> VmOptions {
        VmOptions {
            name: "vm".into(),
            memory: "1GiB".into(),
            cpus: 2,
            shares: Vec::new(),
            state_disk: None,
            network: "none".into(),
            port_forwards: Vec::new(),
            guest_forwards: Vec::new(),
            insecure_registries: Vec::new(),
            local_agent: false,
        }
    }
}

impl VmOptions {
    /// The `[vms.NAME]` section of crun-shimd's configuration.
    fn toml(&self, image: &GuestImage) -> String {
        let q = |p: &Path| format!("{:?}", p.display().to_string());
        let mut t = format!(
            "[vms.{}]\nkernel = {}\ninitramfs = {}\nmemory = {:?}\ncpus = {}\naccel = \"tcg\"\nboot_timeout = \"{}s\"\n",
            self.name,
            q(&image.kernel),
            q(&image.initramfs),
            self.memory,
            self.cpus,
            BOOT_TIMEOUT.as_secs()
        );
        let registries: Vec<String> = self
            .insecure_registries
            .iter()
            .map(|r| format!("{r:?}"))
            .collect();
        let _ = writeln!(t, "insecure_registries = [{}]", registries.join(", "));
        if let Some(disk) = &self.state_disk {
            let _ = write!(
                t,
                "[[vms.{}.disks]]\npath = {}\nsize = \"2GiB\"\ncreate_if_missing = true\nmount = \"/var/lib/libcrun-shim\"\n",
                self.name,
                q(disk)
            );
        }
        for share in &self.shares {
            let _ = write!(t, "[[vms.{}.shares]]\npath = {}\n", self.name, q(share));
        }
        let _ = writeln!(t, "[vms.{}.network]\nmode = {:?}", self.name, self.network);
        let forwards: Vec<String> = self
            .port_forwards
            .iter()
            .map(|(h, g)| format!("{{ host_port = {h}, guest_port = {g} }}"))
            .collect();
        let _ = writeln!(t, "port_forwards = [{}]", forwards.join(", "));
        let forwards: Vec<String> = self
            .guest_forwards
            .iter()
            .map(|(g, h)| format!("{{ guest_port = {g}, host = \"{h}\" }}"))
            .collect();
        let _ = writeln!(t, "guest_forwards = [{}]", forwards.join(", "));
        t
    }
}

/// A `crun-shimd` running one VM (and its local agent if asked).
#[derive(Debug)]
pub struct VmHost {
    host: HostProcess,
    name: String,
    image: GuestImage,
    boot_time: Duration,
    _agent_root: tempfile::TempDir,
}

impl VmHost {
    /// Starts the daemon with the VM and waits until the guest's agent
    /// serves.
    pub fn start(options: &VmOptions) -> io::Result<VmHost> {
        VmHost::start_inner(options, false)
    }

    /// [`VmHost::start`], the daemon dying with the calling thread
    /// (PR_SET_PDEATHSIG): a test binary killed leaves no VM behind.
    pub fn start_tied(options: &VmOptions) -> io::Result<VmHost> {
        VmHost::start_inner(options, true)
    }

    fn start_inner(options: &VmOptions, tied: bool) -> io::Result<VmHost> {
        let image = guest_image()?;
        let agent_root = tempfile::Builder::new().prefix("vm-host-agent").tempdir()?;
        let config = agent_root.path().join("crun-shimd.toml");
        std::fs::write(&config, options.toml(&image))?;
        let started = Instant::now();
        let host = HostProcess::start_with(
            &crate::binary("crun-shimd"),
            &[
                "--config".into(),
                config.display().to_string(),
                "--local-agent".into(),
                options.local_agent.to_string(),
                "--agent-binary".into(),
                crate::binary("crun-shim-agent").display().to_string(),
                "--agent-root".into(),
                agent_root.path().join("root").display().to_string(),
            ],
            &[],
            tied,
        )?;
        let vm = VmHost {
            host,
            name: options.name.clone(),
            image,
            boot_time: Duration::ZERO,
            _agent_root: agent_root,
        };
        vm.wait_serving(started + BOOT_TIMEOUT)?;
        Ok(VmHost {
            boot_time: started.elapsed(),
            ..vm
        })
    }

    /// Waits until the guest's agent accepts a connection, until `deadline`.
    pub fn wait_serving(&self, deadline: Instant) -> io::Result<()> {
        let socket = self.vm_dir().join("vsock.sock");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        while Instant::now() < deadline {
            let connected = runtime.block_on(async {
                tokio::time::timeout(
                    Duration::from_secs(2),
                    libcrun_shim_transport::connect_hybrid(&socket, 1024),
                )
                .await
            });
            if let Ok(Ok(_)) = connected {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "the VM's agent did not serve: {}\nconsole:\n{}",
                self.host.log(),
                self.console()
            ),
        ))
    }

    /// From the daemon's start to the guest's agent answering.
    pub fn boot_time(&self) -> Duration {
        self.boot_time
    }

    /// The daemon.
    pub fn host(&self) -> &HostProcess {
        &self.host
    }

    /// The VM's (and its agent's) name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The guest image booted.
    pub fn image(&self) -> &GuestImage {
        &self.image
    }

    /// The VM's runtime directory in the daemon's.
    pub fn vm_dir(&self) -> PathBuf {
        self.host.socket().with_file_name("vms").join(&self.name)
    }

    /// The guest agent's endpoint.
    pub fn endpoint(&self) -> String {
        format!(
            "hvsock://{}:1024",
            self.vm_dir().join("vsock.sock").display()
        )
    }

    /// The guest's console output of the current boot.
    pub fn console(&self) -> String {
        std::fs::read_to_string(self.vm_dir().join("console.log")).unwrap_or_default()
    }

    /// The guest's uptime (its own clock, from the kernel's start) when its
    /// init started the agent, read from the console: the part of the boot
    /// spent in the guest's kernel and init, as against QEMU, the firmware
    /// and loading the kernel before it, and the agent's start after it.
    pub fn guest_uptime_at_agent_start(&self) -> Option<Duration> {
        let console = self.console();
        let line = console
            .lines()
            .find(|l| l.contains("crun-shim-init: agent started"))?;
        let uptime = line.strip_prefix('[')?.split(']').next()?.trim();
        Some(Duration::from_secs_f64(uptime.parse().ok()?))
    }

    /// A channel straight to the guest's agent, over hybrid vsock.
    pub async fn channel(&self) -> Channel {
        self.try_channel()
            .await
            .expect("connecting to the VM's agent")
    }

    /// [`VmHost::channel`], failing while the agent does not listen.
    pub async fn try_channel(&self) -> Result<Channel, tonic::transport::Error> {
        let endpoint =
            libcrun_shim_transport::Endpoint::parse(&self.endpoint()).expect("the VM's endpoint");
        endpoint
            .connect(endpoint.builder().connect_timeout(Duration::from_secs(10)))
            .await
    }

    /// QEMU's pid, while it runs.
    pub fn qemu_pid(&self) -> Option<i32> {
        let pids = std::fs::read_to_string(self.vm_dir().join("pids")).ok()?;
        pids.lines()
            .filter_map(|l| l.trim().parse::<i32>().ok())
            .find(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).contains("-kernel"))
            })
    }
}

/// The VM this test binary shares among its VM tests, booted with
/// `options` by the first test that asks. Its shares must exist first.
pub fn shared(options: impl FnOnce() -> VmOptions) -> &'static VmHost {
    static VM: OnceLock<Option<VmHost>> = OnceLock::new();
    VM.get_or_init(|| {
        let options = options();
        // The daemon dies with the thread that started it: one that
        // lives as long as the test binary.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(VmHost::start_tied(&options));
            loop {
                std::thread::park();
            }
        });
        let vm = rx
            .recv()
            .expect("the VM's thread")
            .unwrap_or_else(|e| panic!("booting the test VM: {e}"));
        eprintln!("test VM booted in {:?}", vm.boot_time());
        if let Some(pid) = vm.host().pid() {
            let _ = SHARED_PID.set(pid as i32);
        }
        // SAFETY: registers a plain function to run at exit.
        unsafe { libc::atexit(stop_shared) };
        Some(vm)
    })
    .as_ref()
    .expect("booted")
}

extern "C" fn stop_shared() {
    // The daemon powers the VM off on SIGTERM; the test binary is exiting,
    // so the VM must go now rather than when the daemon notices.
    // (Statics are never dropped: this is their drop.)
    if let Some(pid) = SHARED_PID.get() {
        // SAFETY: signals the daemon this test binary started.
        unsafe { libc::kill(*pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline && Path::new(&format!("/proc/{pid}")).exists() {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    for dir in [SHARE_DIR.get(), SCRATCH_DIR.get()].into_iter().flatten() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

static SHARED_PID: OnceLock<i32> = OnceLock::new();

/// A turn with the shared VM: held by one test at a time, across its
/// awaits (each test has its own runtime, so an async-aware lock).
pub type Lease = tokio::sync::MutexGuard<'static, ()>;

static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Waits for this test's turn with the shared VM.
pub async fn lease() -> Lease {
    TURN.lock().await
}

/// [`lease`], for a test that is not async.
pub fn lease_blocking() -> Lease {
    TURN.blocking_lock()
}

static SHARE_DIR: OnceLock<PathBuf> = OnceLock::new();
static SCRATCH_DIR: OnceLock<PathBuf> = OnceLock::new();

/// A private directory for the shared VM's files that the guest does not
/// see (its state disk), removed when the test binary exits.
pub fn scratch_dir() -> &'static Path {
    SCRATCH_DIR.get_or_init(|| {
        tempfile::Builder::new()
            .prefix("libcrun-shim-vm-scratch")
            .tempdir()
            .expect("a scratch directory")
            .keep()
    })
}

/// A directory for the shared VM to share with its guest (a fresh
/// temporary directory, removed when the test binary exits).
pub fn share_dir() -> &'static Path {
    SHARE_DIR.get_or_init(|| {
        tempfile::Builder::new()
            .prefix("libcrun-shim-vm-share")
            .tempdir()
            .expect("a share directory")
            .keep()
    })
}
