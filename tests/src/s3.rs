//! The test cluster's S3-compatible store (s3s-fs, started by up.sh):
//! where it is, its keys, a bucket, and objects put through the S3 API.

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests through scripts/test (tests/cluster/up.sh starts the S3 store)")
    })
}

/// `http://HOST:PORT` of the store.
pub fn endpoint() -> String {
    var("KONTINUUM_S3_ENDPOINT")
}

/// The environment a worker needs to read the store.
pub fn credentials() -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID", var("KONTINUUM_S3_ACCESS_KEY")),
        ("AWS_SECRET_ACCESS_KEY", var("KONTINUUM_S3_SECRET_KEY")),
    ]
}

/// A new empty bucket (s3s-fs keeps a bucket as a directory of its root).
pub fn bucket(name: &str) -> AmazonS3 {
    let dir = std::path::Path::new(&var("KONTINUUM_S3_DIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the bucket's directory");
    client(name)
}

/// A client of `bucket` with the store's keys.
pub fn client(bucket: &str) -> AmazonS3 {
    AmazonS3Builder::new()
        .with_endpoint(endpoint())
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_bucket_name(bucket)
        .with_access_key_id(var("KONTINUUM_S3_ACCESS_KEY"))
        .with_secret_access_key(var("KONTINUUM_S3_SECRET_KEY"))
        .build()
        .expect("an S3 client")
}

/// Puts `data` at `key` through the S3 API.
pub async fn put(s3: &AmazonS3, key: &str, data: Vec<u8>) {
    s3.put(&Path::from(key), PutPayload::from(data))
        .await
        .unwrap_or_else(|e| panic!("put {key}: {e}"));
}

/// Deletes `key` through the S3 API.
pub async fn delete(s3: &AmazonS3, key: &str) {
    s3.delete(&Path::from(key))
        .await
        .unwrap_or_else(|e| panic!("delete {key}: {e}"));
}
