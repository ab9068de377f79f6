//! `GET /v1/objects/{namespace}/{kind}/{name}/tree`: the future tree with per-node
//! state, cut after `maxNodes`; unknown objects 404, bad limits 400.

use kontinuum_api::ObjectId;
use kontinuum_testkit::TestServer;
use serde_json::json;

#[tokio::test]
async fn tree_of_a_map_with_limits_and_errors() {
    let server = TestServer::start().await;
    let base = server.url().to_string();
    let client = server.client();
    let future = json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "HierarchicalFuture",
        "metadata": {"name": "sq"},
        "spec": {"map": {"source": {"range": {"start": 0, "end": 100}},
                         "function": {"function": "std.square"},
                         "shardSize": 10, "fanout": 4, "reduce": "sum"}}});
    client.submit(vec![future]).await.unwrap();

    let tree = client
        .tree(&ObjectId::future("default", "sq"), 1000)
        .await
        .unwrap();
    assert_eq!(tree.root.path, "/");
    assert_eq!(tree.root.weight, 100);
    assert!(!tree.truncated);
    assert!(tree.nodes >= 1);

    let cut = client
        .tree(&ObjectId::future("default", "sq"), 1)
        .await
        .unwrap();
    assert!(cut.root.children.is_empty());
    assert_eq!(cut.truncated, cut.nodes > 1);

    let missing = client
        .tree(&ObjectId::future("default", "none"), 10)
        .await
        .unwrap_err();
    assert!(missing.is_not_found(), "{missing}");

    let http = reqwest::Client::new();
    for bad in ["0", "-1", "x", "100001"] {
        let resp = http
            .get(format!(
                "{base}/v1/objects/default/future/sq/tree?maxNodes={bad}"
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 400, "maxNodes={bad}");
        let body: serde_json::Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
        assert_eq!(body["field"], "maxNodes", "{body}");
    }
    server.stop().await;
}
