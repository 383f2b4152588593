//! `stack`: the stack template.yaml defines, made on the configured endpoint for the functions'
//! code run locally (`poll`, `process`, `integration …`), and the variables that name it.

use m365_ingest::adapters::aws::template_stack;
use m365_ingest::adapters::aws::{load_sdk_config, AwsClients};

use crate::args::StackOptions;
use crate::Failure;

/// The template as this program was built with it.
const TEMPLATE: &str = include_str!("../../../template.yaml");

pub async fn run(o: StackOptions) -> Result<(), Failure> {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| "the credentials' AWS account".into());
    let sdk = load_sdk_config().await;
    let clients = AwsClients::new(&sdk);
    let region = sdk.region().map(|r| r.as_ref().to_owned());
    let vars = template_stack::create(&clients, region.as_deref(), TEMPLATE, &o.prefix).await.map_err(Failure::Run)?;
    eprintln!("m365-ingest: made template.yaml's tables, queues and bucket as {}-* on {endpoint}", o.prefix);
    for (name, value) in vars {
        // Names and URLs carry no quote; quoted all the same for the shell.
        println!("export {name}='{value}'");
    }
    Ok(())
}
