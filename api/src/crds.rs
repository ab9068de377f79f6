//! The CRD manifests, generated from the types; `kontinuum crds` prints them
//! and `crds/` holds a copy that CI compares.

use kube::CustomResourceExt;

/// serde_json's arbitrary-precision numbers reach serde_yaml as private
/// structs; going through JSON text gives serde_yaml plain numbers.
fn to_yaml(crd: &impl serde::Serialize) -> Result<String, serde_yaml::Error> {
    let mut value =
        serde_json::to_value(crd).map_err(<serde_yaml::Error as serde::ser::Error>::custom)?;
    kubernetes_integer_formats(&mut value);
    let json =
        serde_json::to_string(&value).map_err(<serde_yaml::Error as serde::ser::Error>::custom)?;
    let value: serde_yaml::Value = serde_yaml::from_str(&json)?;
    serde_yaml::to_string(&value)
}

/// schemars names Rust's unsigned types (`uint32`, `uint64`, ...), formats
/// the API server does not know (`kubectl explain` warns about each). They
/// become `int32`/`int64` with `minimum: 0`, which says the same in
/// Kubernetes' words.
fn kubernetes_integer_formats(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let replacement = match map.get("format").and_then(Value::as_str) {
                Some("uint8" | "uint16" | "uint32" | "uint") => Some(("int32", true)),
                Some("uint64" | "uint128") => Some(("int64", true)),
                Some("int8" | "int16") => Some(("int32", false)),
                _ => None,
            };
            if let Some((format, unsigned)) = replacement {
                map.insert("format".into(), Value::String(format.into()));
                if unsigned && !map.contains_key("minimum") {
                    map.insert("minimum".into(), Value::from(0));
                }
            }
            for child in map.values_mut() {
                kubernetes_integer_formats(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(kubernetes_integer_formats),
        _ => {}
    }
}

/// (file name under `crds/`, YAML) for each custom resource, in a fixed order.
pub fn crd_files() -> Result<Vec<(&'static str, String)>, serde_yaml::Error> {
    Ok(vec![
        (
            "futures.kontinuum.dev.yaml",
            to_yaml(&crate::HierarchicalFuture::crd())?,
        ),
        ("tasks.kontinuum.dev.yaml", to_yaml(&crate::Task::crd())?),
        (
            "workerpools.kontinuum.dev.yaml",
            to_yaml(&crate::WorkerPool::crd())?,
        ),
    ])
}

/// All CRDs as one multi-document YAML stream (what `kontinuum crds` prints).
pub fn crds_yaml() -> Result<String, serde_yaml::Error> {
    let mut out = String::new();
    for (_, yaml) in crd_files()? {
        out.push_str("---\n");
        out.push_str(&yaml);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn crds_render() {
        let y = super::crds_yaml().unwrap();
        std::fs::write(std::env::temp_dir().join("kontinuum-crds.yaml"), &y).unwrap();
        assert!(y.contains("x-kubernetes-validations"));
        assert!(
            !y.contains("serde_json::private"),
            "numbers must be plain YAML numbers"
        );
        // Only the formats the API server knows (kubectl explain warns otherwise).
        for line in y.lines().filter(|l| l.trim_start().starts_with("format:")) {
            let format = line.trim_start().trim_start_matches("format:").trim();
            assert!(
                ["int32", "int64", "double", "float", "date-time", "byte"].contains(&format),
                "unknown format in the CRDs: {format}"
            );
        }
    }
}
