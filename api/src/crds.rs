//! The CRD manifests, generated from the types; `kontinuum crds` prints them
//! and `crds/` holds a copy that CI compares.

use kube::CustomResourceExt;

/// serde_json's arbitrary-precision numbers reach serde_yaml as private
/// structs; going through JSON text gives serde_yaml plain numbers.
fn to_yaml(crd: &impl serde::Serialize) -> Result<String, serde_yaml::Error> {
    let json =
        serde_json::to_string(crd).map_err(<serde_yaml::Error as serde::ser::Error>::custom)?;
    let value: serde_yaml::Value = serde_yaml::from_str(&json)?;
    serde_yaml::to_string(&value)
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
    }
}
