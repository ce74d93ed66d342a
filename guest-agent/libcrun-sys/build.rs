//! Finds libcrun and generates its bindings with bindgen.
//!
//! Lookup order:
//! 1. `LIBCRUN_PREFIX`: an install prefix holding `lib/` and `include/`
//!    (the layout `integration/setup.sh` builds); its
//!    `lib/pkgconfig/libcrun.pc` is used when present.
//! 2. The cache `integration/setup.sh` fills by default,
//!    `/var/cache/libcrun-shim/current`.
//! 3. A system libcrun found by `pkg-config libcrun`.
//!
//! A prefix holding `lib/libcrun.a` is linked statically (the binaries then
//! do not depend on the cache at run time) unless `LIBCRUN_STATIC=0`; a
//! system libcrun is linked the way its `.pc` file says.
//!
//! A static libcrun's own dependencies (libseccomp, libgcrypt, libcap, …)
//! are linked statically too when the C compiler finds their archives
//! (Debian's -dev packages ship them; yajl's has none and stays shared).
//! Every shared library costs each process that loads it the pages its
//! relocations dirty (8–36 KiB each, measured), and a monitor process runs
//! beside every container.

use std::env;
use std::path::{Path, PathBuf};

/// Where `integration/setup.sh` leaves libcrun unless told otherwise.
const DEFAULT_CACHE: &str = "/var/cache/libcrun-shim/current";

fn main() {
    println!("cargo:rerun-if-env-changed=LIBCRUN_PREFIX");
    println!("cargo:rerun-if-env-changed=LIBCRUN_STATIC");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    println!("cargo:rerun-if-env-changed=CC");
    println!("cargo:rerun-if-changed=wrapper.h");

    let prefix = env::var_os("LIBCRUN_PREFIX")
        .map(PathBuf::from)
        .or_else(|| Some(PathBuf::from(DEFAULT_CACHE)).filter(|p| p.join("lib").is_dir()));
    let static_wanted = env::var("LIBCRUN_STATIC").map(|v| v != "0").unwrap_or(true);

    let include_paths = match &prefix {
        Some(prefix) => link_prefix(prefix, static_wanted),
        None => link_pkg_config(false),
    };
    generate_bindings(&include_paths);
}

/// Links libcrun from an install prefix, returns its include paths.
fn link_prefix(prefix: &Path, static_wanted: bool) -> Vec<PathBuf> {
    let prefix = prefix
        .canonicalize()
        .unwrap_or_else(|e| fail(&format!("LIBCRUN_PREFIX {}: {e}", prefix.display())));
    println!("cargo:rerun-if-changed={}", prefix.join("lib").display());
    let pc_dir = prefix.join("lib/pkgconfig");
    if pc_dir.join("libcrun.pc").is_file() {
        let mut path = pc_dir.into_os_string();
        if let Some(old) = env::var_os("PKG_CONFIG_PATH") {
            path.push(":");
            path.push(old);
        }
        // SAFETY: build scripts are single-threaded; this only affects the
        // pkg-config child processes started below.
        unsafe { env::set_var("PKG_CONFIG_PATH", path) };
        return link_pkg_config(static_wanted && prefix.join("lib/libcrun.a").is_file());
    }
    // A bare prefix: headers under include/ (or include/libcrun), the
    // library under lib/, its dependencies from the system.
    let lib = prefix.join("lib");
    println!("cargo:rustc-link-search=native={}", lib.display());
    if static_wanted && lib.join("libcrun.a").is_file() {
        println!("cargo:rustc-link-lib=static=crun");
        link_dependencies(["seccomp", "gcrypt", "cap", "yajl"]);
    } else {
        println!("cargo:rustc-link-lib=crun");
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    }
    vec![prefix.join("include"), prefix.join("include/libcrun")]
}

/// Links libcrun through pkg-config, returns its include paths.
fn link_pkg_config(statik: bool) -> Vec<PathBuf> {
    match pkg_config::Config::new()
        .statik(statik)
        .cargo_metadata(!statik)
        .probe("libcrun")
    {
        Ok(lib) => {
            println!("cargo:version={}", lib.version);
            if statik {
                for dir in &lib.link_paths {
                    println!("cargo:rustc-link-search=native={}", dir.display());
                }
                println!("cargo:rustc-link-lib=static=crun");
                link_dependencies(lib.libs.iter().map(String::as_str).filter(|l| *l != "crun"));
            }
            let mut paths = lib.include_paths.clone();
            for p in &lib.include_paths {
                paths.push(p.join("libcrun"));
            }
            if !statik {
                for dir in &lib.link_paths {
                    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir.display());
                }
            }
            paths
        }
        Err(e) => fail(&format!(
            "libcrun not found ({e}).\n\
             Run `integration/setup.sh` (Debian 12: builds libcrun from Debian's crun \
             source package into {DEFAULT_CACHE}), or set LIBCRUN_PREFIX to an install \
             prefix holding lib/libcrun.so and include/, or install a libcrun whose \
             `libcrun.pc` pkg-config finds."
        )),
    }
}

/// Libraries whose static archives need others in turn (not named in
/// libcrun's `.pc` file, which lists what the shared libraries load).
const ARCHIVE_NEEDS: &[(&str, &[&str])] = &[("gcrypt", &["gpg-error"])];

/// Links a static libcrun's dependencies: statically where the C compiler
/// finds `libNAME.a`, as shared libraries otherwise.
fn link_dependencies<'a>(names: impl IntoIterator<Item = &'a str>) {
    for name in names {
        let Some(dir) = static_archive_dir(name) else {
            println!("cargo:rustc-link-lib={name}");
            continue;
        };
        println!("cargo:rustc-link-search=native={}", dir.display());
        println!("cargo:rustc-link-lib=static={name}");
        let needs = ARCHIVE_NEEDS.iter().find(|(n, _)| *n == name);
        for need in needs.map_or(&[][..], |(_, needs)| needs) {
            match static_archive_dir(need) {
                Some(_) => println!("cargo:rustc-link-lib=static={need}"),
                None => println!("cargo:rustc-link-lib={need}"),
            }
        }
    }
}

/// The directory holding `libNAME.a`, as the C compiler (`$CC`, or `cc`)
/// finds it.
fn static_archive_dir(name: &str) -> Option<PathBuf> {
    let cc = env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = std::process::Command::new(cc)
        .arg(format!("-print-file-name=lib{name}.a"))
        .output()
        .ok()?;
    // Without a match it prints the name back, without a directory.
    let path = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    let dir = path
        .parent()
        .filter(|d| d.is_absolute())?
        .canonicalize()
        .ok()?;
    path.is_file().then_some(dir)
}

/// Runs bindgen over `wrapper.h`.
fn generate_bindings(include_paths: &[PathBuf]) {
    let mut builder = bindgen::Builder::default()
        .header("wrapper.h")
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .allowlist_function("libcrun_container_(load_from_memory|load_from_file|free|run|create|start|kill|killall|delete|state|exec_with_options|exec_process_file|update|update_from_values|pause|unpause|read_pids|spec)")
        .allowlist_function("libcrun_(get_container_state_string|error_release|set_verbosity|init_logging|read_container_status|free_container_status|is_container_running|get_containers_list|free_containers_list|get_state_directory|container_delete_status)")
        .allowlist_type("libcrun_(context|container|container_status|container_list|container_exec_options|update_value|error)_[st]|crun_output_handler")
        .allowlist_var("LIBCRUN_RUN_OPTIONS_PREFORK|LIBCRUN_VERBOSITY_.*|PACKAGE_VERSION")
        .derive_default(true)
        .layout_tests(false)
        .generate_comments(false);
    for path in include_paths {
        builder = builder.clang_arg(format!("-I{}", path.display()));
    }
    let bindings = builder
        .generate()
        .unwrap_or_else(|e| fail(&format!("bindgen over libcrun's headers: {e}")));
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR is set by cargo"));
    bindings
        .write_to_file(out.join("bindings.rs"))
        .unwrap_or_else(|e| fail(&format!("writing bindings: {e}")));
}

fn fail(message: &str) -> ! {
    eprintln!("libcrun-sys: {message}");
    std::process::exit(1);
}
