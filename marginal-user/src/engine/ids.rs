//! Names the daemon gives paths and maps; the engine only compares them.
use std::fmt;

/// A path (a block device under a multipath map), by kernel device name: `sdb`, `nvme0n1`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PathKey(pub String);

/// A multipath map, by its device-mapper name (alias or WWID): `mpatha`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MapName(pub String);

macro_rules! string_id {
    ($name:ident) => {
        impl $name {
            pub fn new(name: impl Into<String>) -> Self {
                Self(name.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(name: &str) -> Self {
                Self(name.to_string())
            }
        }

        impl From<String> for $name {
            fn from(name: String) -> Self {
                Self(name)
            }
        }
    };
}

string_id!(PathKey);
string_id!(MapName);
