//! The provider client, shared with the other services that call external
//! providers: see `paystream-provider-client`.

pub use paystream_provider_client::{
    BuildError, CallError, ProviderClient, ProviderSettings, Refused, Unavailable,
};
