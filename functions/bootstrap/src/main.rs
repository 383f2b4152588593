//! The one `bootstrap` every function of template.yaml deploys: one arm64 build and one link
//! instead of six (docs/cost.md has what it costs in size and start-up). Lambda tells the
//! process its function's `Handler` setting in `_HANDLER` ("the handler location configured on
//! the function", a reserved variable of every runtime: Lambda Developer Guide, "Working with
//! Lambda environment variables"); it names the function to serve.

use lambda_runtime::{tracing, Error};

/// Every function, by the `Handler` its resource in template.yaml sets.
const FUNCTIONS: [&str; 6] = ["check", "dispatch", "poller", "processor", "query", "remediate"];

// One thread: a function of 256 MB has a fraction of a vCPU, and its work is waiting on the
// network; a multi-threaded runtime only adds cross-thread wake-ups (measured: issue 11, item 7).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    match function(std::env::var("_HANDLER").ok().as_deref())? {
        "check" => check::serve().await,
        "dispatch" => dispatch::serve().await,
        "poller" => poller::serve().await,
        "processor" => processor::serve().await,
        "query" => query::serve().await,
        "remediate" => remediate::serve().await,
        other => Err(format!("no function `{other}` is served").into()),
    }
}

/// The function `handler` names, or what to set.
fn function(handler: Option<&str>) -> Result<&'static str, String> {
    let known = FUNCTIONS.join(", ");
    match handler {
        Some(h) => FUNCTIONS.iter().copied().find(|f| *f == h).ok_or_else(|| {
            format!("the function's Handler is `{h}`, which names no function of this bootstrap: set the function's Handler in template.yaml to one of {known}")
        }),
        None => Err(format!(
            "_HANDLER is not set: Lambda sets it from the function's Handler (template.yaml); run locally with _HANDLER set to one of {known}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handler_names_the_function_and_anything_else_says_what_to_set() {
        for f in FUNCTIONS {
            assert_eq!(function(Some(f)), Ok(f));
        }
        let unknown = function(Some("bootstrap")).unwrap_err();
        assert!(
            unknown.contains("`bootstrap`") && unknown.contains("one of check, dispatch, poller, processor, query, remediate"),
            "{unknown}"
        );
        let unset = function(None).unwrap_err();
        assert!(unset.contains("_HANDLER is not set") && unset.contains("template.yaml"), "{unset}");
    }
}
