//! `user`: a broker started as root runs as an ordinary user once it holds what needs root (the
//! listeners, which may be below port 1024, and the files it reads at start), with Mosquitto
//! 2.0's rules and messages:
//!
//! - started as any other user, `user` has no effect;
//! - `user root` stays root, with a warning;
//! - the default, `mosquitto`, falls back to `nobody` (with a warning) when there is no such
//!   user; any other missing user is an error and the broker does not start;
//! - the switch sets the user's supplementary groups, then its primary group, then the user.
//!
//! Mosquitto 2.0 switches before it opens anything; Midge switches after binding, so ports below
//! 1024 and root-only certificate keys work, but what is re-read later (password and ACL files
//! and certificates on SIGHUP, the log file on rotation, the persistence directory) must be
//! readable or writable by the user, as with Mosquitto. The switch happens while the runtime's
//! threads exist: glibc and musl apply setgroups/setgid/setuid to every thread of the process.

use std::ffi::CString;

use nix::errno::Errno;
use nix::unistd::{Gid, Uid, User};

/// Mosquitto's default `user`, which falls back to `nobody` when missing.
const DEFAULT_USER: &str = "mosquitto";

/// A user to switch to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Account {
    pub(crate) name: String,
    pub(crate) uid: Uid,
    pub(crate) gid: Gid,
}

impl From<User> for Account {
    fn from(user: User) -> Self {
        Self {
            name: user.name,
            uid: user.uid,
            gid: user.gid,
        }
    }
}

/// What `user` means for this process, decided before anything is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Not started as root: nothing to do.
    NotRoot,
    /// `user root`: stays root.
    StayRoot,
    /// Switch to `account` once the listeners are open. `fell_back` when the default user
    /// `mosquitto` does not exist and this is `nobody`.
    Switch { account: Account, fell_back: bool },
}

/// Why the broker cannot become its `user`. The texts are Mosquitto's.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PrivilegeError {
    #[error("Unable to drop privileges to '{0}' because this user does not exist.")]
    NoSuchUser(String),
    #[error("Unable to drop privileges to 'nobody'.")]
    NoNobody,
    #[error("cannot look up user '{name}': {errno}")]
    Lookup { name: String, errno: Errno },
    #[error("Error setting groups whilst dropping privileges: {0}.")]
    Groups(Errno),
    #[error("Error setting gid whilst dropping privileges: {0}.")]
    Gid(Errno),
    #[error("Error setting uid whilst dropping privileges: {0}.")]
    Uid(Errno),
}

impl Plan {
    /// The plan for `user` in this process.
    pub(crate) fn for_user(user: &str) -> Result<Self, PrivilegeError> {
        Self::decide(user, Uid::effective().is_root(), |name| {
            User::from_name(name)
                .map(|found| found.map(Account::from))
                .map_err(|errno| PrivilegeError::Lookup {
                    name: name.to_owned(),
                    errno,
                })
        })
    }

    /// The rules, with the user database as `lookup`.
    fn decide(
        user: &str,
        root: bool,
        lookup: impl Fn(&str) -> Result<Option<Account>, PrivilegeError>,
    ) -> Result<Self, PrivilegeError> {
        if !root {
            return Ok(Self::NotRoot);
        }
        if user == "root" {
            return Ok(Self::StayRoot);
        }
        if let Some(account) = lookup(user)? {
            return Ok(Self::Switch {
                account,
                fell_back: false,
            });
        }
        if user != DEFAULT_USER {
            return Err(PrivilegeError::NoSuchUser(user.to_owned()));
        }
        match lookup("nobody")? {
            Some(account) => Ok(Self::Switch {
                account,
                fell_back: true,
            }),
            None => Err(PrivilegeError::NoNobody),
        }
    }

    /// The user and group that files created before the switch should belong to.
    pub(crate) fn owner(&self) -> Option<(Uid, Gid)> {
        match self {
            Self::Switch { account, .. } => Some((account.uid, account.gid)),
            Self::NotRoot | Self::StayRoot => None,
        }
    }

    /// What to log once logging is set up, before the switch.
    pub(crate) fn warning(&self) -> Option<String> {
        match self {
            Self::Switch { fell_back: true, .. } => Some(format!(
                "Warning: Unable to drop privileges to '{DEFAULT_USER}' because this user does not exist. Trying \
                 'nobody' instead."
            )),
            _ => None,
        }
    }

    /// Switches to the planned user, for good: groups, then group, then user.
    pub(crate) fn apply(&self) -> Result<(), PrivilegeError> {
        match self {
            Self::NotRoot => {}
            Self::StayRoot => {
                tracing::warn!("Warning: Midge should not be run as root/administrator.");
            }
            Self::Switch { account, .. } => {
                // A user name comes from the passwd database: it has no NUL byte.
                let name = CString::new(account.name.as_bytes())
                    .map_err(|_| PrivilegeError::Groups(Errno::EINVAL))?;
                nix::unistd::initgroups(&name, account.gid).map_err(PrivilegeError::Groups)?;
                nix::unistd::setgid(account.gid).map_err(PrivilegeError::Gid)?;
                nix::unistd::setuid(account.uid).map_err(PrivilegeError::Uid)?;
                if Uid::effective().is_root() || Gid::effective().as_raw() == 0 {
                    tracing::warn!("Warning: Midge should not be run as root/administrator.");
                }
                tracing::info!(
                    event = "broker.user",
                    "Running as user {} (uid {}, gid {}).",
                    account.name,
                    account.uid,
                    account.gid
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(name: &str, id: u32) -> Account {
        Account {
            name: name.to_owned(),
            uid: Uid::from_raw(id),
            gid: Gid::from_raw(id),
        }
    }

    /// A user database holding `names`.
    fn users(names: &'static [&'static str]) -> impl Fn(&str) -> Result<Option<Account>, PrivilegeError> {
        move |name| {
            Ok(names
                .iter()
                .position(|known| *known == name)
                .map(|i| account(name, 100 + i as u32)))
        }
    }

    #[test]
    fn only_root_switches() {
        let plan = Plan::decide("midge", false, users(&["midge"])).unwrap_or(Plan::StayRoot);
        assert_eq!(plan, Plan::NotRoot);
        // Not even a missing user matters then, as in Mosquitto.
        let plan = Plan::decide("ghost", false, users(&[])).unwrap_or(Plan::StayRoot);
        assert_eq!(plan, Plan::NotRoot);
    }

    #[test]
    fn root_stays_root_when_asked() {
        let plan = Plan::decide("root", true, users(&["root"])).unwrap_or(Plan::NotRoot);
        assert_eq!(plan, Plan::StayRoot);
        assert_eq!(plan.owner(), None);
    }

    #[test]
    fn a_known_user_is_switched_to() {
        let plan = Plan::decide("midge", true, users(&["nobody", "midge"])).unwrap_or(Plan::NotRoot);
        assert_eq!(
            plan,
            Plan::Switch {
                account: account("midge", 101),
                fell_back: false
            }
        );
        assert_eq!(plan.owner(), Some((Uid::from_raw(101), Gid::from_raw(101))));
        assert_eq!(plan.warning(), None);
    }

    #[test]
    fn a_missing_mosquitto_user_falls_back_to_nobody_with_mosquittos_warning() {
        let plan = Plan::decide("mosquitto", true, users(&["nobody"])).unwrap_or(Plan::NotRoot);
        assert_eq!(
            plan,
            Plan::Switch {
                account: account("nobody", 100),
                fell_back: true
            }
        );
        assert_eq!(
            plan.warning().as_deref(),
            Some(
                "Warning: Unable to drop privileges to 'mosquitto' because this user does not exist. Trying \
                 'nobody' instead."
            )
        );
        let error = Plan::decide("mosquitto", true, users(&[]))
            .err()
            .map(|e| e.to_string());
        assert_eq!(error.as_deref(), Some("Unable to drop privileges to 'nobody'."));
    }

    #[test]
    fn any_other_missing_user_is_an_error() {
        let error = Plan::decide("midge", true, users(&["nobody"]))
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            error.as_deref(),
            Some("Unable to drop privileges to 'midge' because this user does not exist.")
        );
    }
}
