//! OData query options as Graph's security APIs accept them.

pub mod eval;
pub mod filter;
pub mod query;

pub use eval::{BoundFilter, Field, FilterSchema, Filterable, Prop, PropKind};
pub use query::{CollectionQuery, OrderBy, QueryError, QueryLimits};
