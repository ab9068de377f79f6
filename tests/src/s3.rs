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

/// Text from a small vocabulary, `lines` lines, each ending in a newline;
/// also returns how many words it holds.
pub fn text(seed: u64, lines: usize) -> (Vec<u8>, u64) {
    const WORDS: [&str; 16] = [
        "the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "Sphinx", "of", "black",
        "quartz", "judge", "my", "vow", "42",
    ];
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as usize
    };
    let (mut out, mut words) = (Vec::new(), 0);
    for _ in 0..lines {
        let n = 1 + next() % 9;
        for i in 0..n {
            if i > 0 {
                out.push(b' ');
            }
            out.extend_from_slice(WORDS[next() % WORDS.len()].as_bytes());
        }
        out.push(b'\n');
        words += n as u64;
    }
    (out, words)
}

/// 19 small objects and one over 64 MiB (read in byte ranges) under
/// `prefix`, in key order as a map reads them; `each` sees every object's
/// bytes in that order. Returns how many words they hold.
pub async fn put_corpus(s3: &AmazonS3, prefix: &str, mut each: impl FnMut(&[u8])) -> u64 {
    let mut total = 0;
    for i in 0..20 {
        let lines = if i == 7 { 2_800_000 } else { 500 + 997 * i };
        let (data, words) = text(i as u64, lines);
        if i == 7 {
            assert!(data.len() > 64 << 20, "{} bytes", data.len());
        }
        each(&data);
        total += words;
        put(s3, &format!("{prefix}part-{i:02}.txt"), data).await;
    }
    total
}
