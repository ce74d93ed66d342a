//! `containerd-shim-crunshim-v2`: the containerd Shim v2 of libcrun-shim
//! (runtime `io.containerd.crunshim.v2`). containerd runs it; it runs
//! containerd's tasks through `crun-shimd` (see `libcrun_shim::shim`).

fn main() {
    libcrun_shim::shim::main();
}
