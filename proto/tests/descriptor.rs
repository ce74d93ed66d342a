//! The encoded descriptor set holds the whole v1 API, documented.

use std::collections::BTreeSet;

use libcrun_shim_proto::FILE_DESCRIPTOR_SET;
use prost::Message;
use prost_types::source_code_info::Location;
use prost_types::{DescriptorProto, EnumDescriptorProto, FileDescriptorProto, FileDescriptorSet};

fn v1_files() -> Vec<FileDescriptorProto> {
    let set = FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).expect("valid descriptor set");
    set.file
        .into_iter()
        .filter(|f| f.package() == "libcrun_shim.v1")
        .collect()
}

#[test]
fn every_service_and_rpc_of_the_api_is_there() {
    let mut rpcs = BTreeSet::new();
    for file in v1_files() {
        for service in &file.service {
            for method in &service.method {
                rpcs.insert(format!("{}/{}", service.name(), method.name()));
            }
        }
    }
    let want = [
        "ContainerService/Create",
        "ContainerService/Start",
        "ContainerService/Stop",
        "ContainerService/Kill",
        "ContainerService/Pause",
        "ContainerService/Resume",
        "ContainerService/Delete",
        "ContainerService/List",
        "ContainerService/ListStream",
        "ContainerService/Inspect",
        "ContainerService/Wait",
        "ContainerService/Update",
        "ContainerService/Attach",
        "ContainerService/ListProcesses",
        "ContainerService/Run",
        "ExecService/Exec",
        "ExecService/ExecSync",
        "ExecService/StartProcess",
        "ExecService/InspectProcess",
        "ExecService/WaitProcess",
        "ExecService/SignalProcess",
        "ExecService/DeleteProcess",
        "LogService/Logs",
        "EventService/Subscribe",
        "MetricsService/GetMetrics",
        "MetricsService/ListMetrics",
        "MetricsService/StreamMetrics",
        "HealthCheckService/GetHealth",
        "ImageService/Pull",
        "ImageService/List",
        "ImageService/Inspect",
        "ImageService/GetRootfs",
        "ImageService/Remove",
        "NetworkService/CreateNetwork",
        "NetworkService/RemoveNetwork",
        "NetworkService/ListNetworks",
        "NetworkService/InspectNetwork",
        "SystemService/Version",
        "SystemService/Info",
        "SystemService/CleanupStopped",
        "SystemService/ListOrphaned",
        "SystemService/ForceDelete",
        "SystemService/Recover",
        "SystemService/Shutdown",
    ];
    let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
    assert_eq!(rpcs, want);
}

#[test]
fn streaming_rpcs_stream() {
    let mut streaming = BTreeSet::new();
    for file in v1_files() {
        for service in &file.service {
            for m in &service.method {
                let kind = match (m.client_streaming(), m.server_streaming()) {
                    (true, true) => "bidi",
                    (false, true) => "server",
                    (true, false) => "client",
                    (false, false) => continue,
                };
                streaming.insert(format!("{}/{} {kind}", service.name(), m.name()));
            }
        }
    }
    let want: BTreeSet<String> = [
        "ContainerService/ListStream server",
        "ContainerService/Attach bidi",
        "ContainerService/Run server",
        "ExecService/Exec bidi",
        "LogService/Logs server",
        "EventService/Subscribe server",
        "MetricsService/StreamMetrics server",
        "ImageService/Pull server",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(streaming, want);
}

/// Collects the source paths of a message, its fields, oneofs and nested
/// types, with a readable name for each.
fn message_paths(
    msg: &DescriptorProto,
    path: Vec<i32>,
    name: String,
    out: &mut Vec<(Vec<i32>, String)>,
) {
    out.push((path.clone(), name.clone()));
    for (i, field) in msg.field.iter().enumerate() {
        out.push((
            [path.clone(), vec![2, i as i32]].concat(),
            format!("{name}.{}", field.name()),
        ));
    }
    for (i, nested) in msg.nested_type.iter().enumerate() {
        if nested.options.as_ref().is_some_and(|o| o.map_entry()) {
            continue;
        }
        message_paths(
            nested,
            [path.clone(), vec![3, i as i32]].concat(),
            format!("{name}.{}", nested.name()),
            out,
        );
    }
    for (i, e) in msg.enum_type.iter().enumerate() {
        enum_paths(
            e,
            [path.clone(), vec![4, i as i32]].concat(),
            format!("{name}.{}", e.name()),
            out,
        );
    }
    for (i, oneof) in msg.oneof_decl.iter().enumerate() {
        // proto3 `optional` fields are synthetic oneofs named `_field`.
        if oneof.name().starts_with('_') {
            continue;
        }
        out.push((
            [path.clone(), vec![8, i as i32]].concat(),
            format!("{name}.{} (oneof)", oneof.name()),
        ));
    }
}

fn enum_paths(
    e: &EnumDescriptorProto,
    path: Vec<i32>,
    name: String,
    out: &mut Vec<(Vec<i32>, String)>,
) {
    out.push((path.clone(), name.clone()));
    for (i, v) in e.value.iter().enumerate() {
        out.push((
            [path.clone(), vec![2, i as i32]].concat(),
            format!("{name}.{}", v.name()),
        ));
    }
}

#[test]
fn every_service_rpc_message_field_and_enum_value_is_documented() {
    let mut undocumented = Vec::new();
    for file in v1_files() {
        let locations: Vec<Location> = file.source_code_info.clone().expect("source info").location;
        let documented = |path: &[i32]| {
            locations
                .iter()
                .any(|l| l.path == path && !l.leading_comments().trim().is_empty())
        };
        let mut paths = Vec::new();
        for (i, service) in file.service.iter().enumerate() {
            paths.push((vec![6, i as i32], service.name().to_string()));
            for (j, m) in service.method.iter().enumerate() {
                paths.push((
                    vec![6, i as i32, 2, j as i32],
                    format!("{}/{}", service.name(), m.name()),
                ));
            }
        }
        for (i, msg) in file.message_type.iter().enumerate() {
            message_paths(msg, vec![4, i as i32], msg.name().to_string(), &mut paths);
        }
        for (i, e) in file.enum_type.iter().enumerate() {
            enum_paths(e, vec![5, i as i32], e.name().to_string(), &mut paths);
        }
        for (path, name) in paths {
            if !documented(&path) {
                undocumented.push(format!("{}: {name}", file.name()));
            }
        }
    }
    assert!(undocumented.is_empty(), "undocumented: {undocumented:#?}");
}
