//! The cost model: measured calls and Lambda time per tenant and poll, times a month of polls,
//! at AWS's list prices (us-east-1, on-demand, arm64), written out below with what they assume.

use std::collections::BTreeMap;

/// USD. AWS list prices, us-east-1, as published for 2025–2026; free tiers ignored.
pub struct Prices {
    /// Lambda arm64 per GB-second, and per million requests.
    pub lambda_gb_s: f64,
    pub lambda_per_m: f64,
    /// SQS standard, per million requests (each up to 64 KB).
    pub sqs_per_m: f64,
    /// DynamoDB on-demand, per million write and read request units.
    pub ddb_wru_per_m: f64,
    pub ddb_rru_per_m: f64,
    /// Secrets Manager per secret-month and per 10,000 API calls.
    pub secret_month: f64,
    pub secrets_per_10k: f64,
    /// S3 standard PUT and GET per 1,000.
    pub s3_put_per_k: f64,
    pub s3_get_per_k: f64,
}

pub const PRICES: Prices = Prices {
    lambda_gb_s: 0.000_013_333_4,
    lambda_per_m: 0.20,
    sqs_per_m: 0.40,
    ddb_wru_per_m: 0.625,
    ddb_rru_per_m: 0.125,
    secret_month: 0.40,
    secrets_per_10k: 0.05,
    s3_put_per_k: 0.005,
    s3_get_per_k: 0.000_4,
};

/// What one unit of work (one tenant's poll, or one alert) costs in calls and Lambda time.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Unit {
    /// AWS calls by `service.operation`, per unit.
    pub calls: BTreeMap<String, f64>,
    pub lambda_gb_s: f64,
    pub lambda_invocations: f64,
}

/// Request units per call, as DynamoDB bills them for this product's small items (< 1 KB,
/// strongly consistent reads: 1 RRU; transactions: 2 WRU per item, two items; a Query of the
/// keys-only index: 0.5 RRU per 4 KB read).
fn units(op: &str) -> (f64, f64) {
    match op {
        "DynamoDB.GetItem" => (0.0, 1.0),
        "DynamoDB.Query" => (0.0, 0.5),
        "DynamoDB.UpdateItem" | "DynamoDB.PutItem" | "DynamoDB.DeleteItem" => (1.0, 0.0),
        "DynamoDB.TransactWriteItems" => (4.0, 0.0),
        "DynamoDB.Scan" => (0.0, 1.0),
        _ => (0.0, 0.0),
    }
}

/// USD per unit, by line item.
pub fn price(u: &Unit) -> BTreeMap<&'static str, f64> {
    let p = &PRICES;
    let mut out = BTreeMap::new();
    let (mut wru, mut rru, mut sqs, mut secrets, mut s3_put, mut s3_get) = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    for (op, n) in &u.calls {
        let (w, r) = units(op);
        wru += w * n;
        rru += r * n;
        match op.split('.').next() {
            Some("SQS") => sqs += n,
            Some("Secrets Manager") => secrets += n,
            Some("S3") if op.ends_with("PutObject") => s3_put += n,
            Some("S3") => s3_get += n,
            _ => {}
        }
    }
    out.insert("lambda", u.lambda_gb_s * p.lambda_gb_s + u.lambda_invocations * p.lambda_per_m / 1e6);
    out.insert("sqs", sqs * p.sqs_per_m / 1e6);
    out.insert("dynamodb", wru * p.ddb_wru_per_m / 1e6 + rru * p.ddb_rru_per_m / 1e6);
    out.insert("secrets_manager_calls", secrets * p.secrets_per_10k / 1e4);
    out.insert("s3", s3_put * p.s3_put_per_k / 1e3 + s3_get * p.s3_get_per_k / 1e3);
    out
}
