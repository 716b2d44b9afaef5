//! Compiles `schema/client.proto` with protox (pure Rust, no `protoc`) and prost, and gives every
//! message the serde attributes of Centrifuge's JSON wire: snake_case names, empty fields left out,
//! and `bytes` fields embedded as raw JSON rather than base64.

use prost_types::field_descriptor_proto::{Label, Type};

const SCHEMA: &str = "schema/client.proto";

fn main() {
    println!("cargo:rerun-if-changed={SCHEMA}");
    let files = protox::compile([SCHEMA], ["schema"]).expect("schema/client.proto compiles");

    let mut config = prost_build::Config::new();
    config.bytes(["."]);
    for file in &files.file {
        let package = file.package();
        for message in &file.message_type {
            let path = format!(".{package}.{}", message.name());
            config.type_attribute(
                &path,
                "#[derive(serde::Serialize, serde::Deserialize)] #[serde(default)]",
            );
            for field in &message.field {
                let is_map = field.type_name().ends_with("Entry")
                    && message.nested_type.iter().any(|n| {
                        n.options.as_ref().is_some_and(|o| o.map_entry())
                            && field.type_name().ends_with(&format!(".{}", n.name()))
                    });
                let attribute = if field.label() == Label::Repeated {
                    if is_map {
                        "#[serde(skip_serializing_if = \"::std::collections::HashMap::is_empty\")]"
                    } else {
                        "#[serde(skip_serializing_if = \"::std::vec::Vec::is_empty\")]"
                    }
                } else {
                    match field.r#type() {
                        Type::Bytes => {
                            "#[serde(with = \"crate::json::raw\", skip_serializing_if = \"::bytes::Bytes::is_empty\")]"
                        }
                        Type::Message => {
                            "#[serde(skip_serializing_if = \"::core::option::Option::is_none\")]"
                        }
                        _ => "#[serde(skip_serializing_if = \"crate::json::is_default\")]",
                    }
                };
                config.field_attribute(format!("{path}.{}", field.name()), attribute);
            }
        }
    }
    config
        .compile_fds(files)
        .expect("prost generates the protocol types");
}
