//! Channels: how one subscriber wants a room's notifications (scope and users options).

use crate::error::ApiError;

/// Which document notifications a channel receives: documents entering the
/// filter's scope (`in`), leaving it (`out`), both (`all`) or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Both (default).
    All,
    /// Documents entering the scope (every `publish`).
    In,
    /// Documents leaving the scope.
    Out,
    /// No document notification.
    None,
}

/// Which user notifications a channel receives: users joining (`in`), leaving
/// (`out`) the room, both (`all`) or none (default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Users {
    /// Both.
    All,
    /// Users joining.
    In,
    /// Users leaving.
    Out,
    /// No user notification (default).
    None,
}

impl Scope {
    /// Parses the `scope` argument (absent: `all`).
    pub fn parse(value: Option<&str>) -> Result<Self, ApiError> {
        match value {
            None | Some("all") => Ok(Self::All),
            Some("in") => Ok(Self::In),
            Some("out") => Ok(Self::Out),
            Some("none") => Ok(Self::None),
            Some(_) => Err(ApiError::InvalidScope),
        }
    }

    /// Whether a document notification of scope `in` (`true`) or `out` reaches this channel.
    pub fn accepts(self, entering: bool) -> bool {
        match self {
            Self::All => true,
            Self::In => entering,
            Self::Out => !entering,
            Self::None => false,
        }
    }
}

impl Users {
    /// Parses the `users` argument (absent: `none`).
    pub fn parse(value: Option<&str>) -> Result<Self, ApiError> {
        match value {
            None | Some("none") => Ok(Self::None),
            Some("all") => Ok(Self::All),
            Some("in") => Ok(Self::In),
            Some("out") => Ok(Self::Out),
            Some(_) => Err(ApiError::InvalidUsers),
        }
    }

    /// Whether a user notification for a joining (`true`) or leaving user reaches this channel.
    pub fn accepts(self, joining: bool) -> bool {
        match self {
            Self::All => true,
            Self::In => joining,
            Self::Out => !joining,
            Self::None => false,
        }
    }
}

/// The channel name for a room and options: `<roomId>-<users><cluster><scope>`.
///
/// The digits are Kuzzle's (channel.ts), so a default subscription gets the
/// same `-311` suffix as on Kuzzle, with two fixes: Kuzzle gives `users: out`
/// and `users: none` the same digit (so the two options would share one channel),
/// and no digit to `scope: none`. Here `users: out` is `4` and `scope: none` is `4`.
/// The cluster digit is always `1` (notifications propagate).
pub fn channel_name(room_id: &str, scope: Scope, users: Users) -> String {
    let users = match users {
        Users::All => '1',
        Users::In => '2',
        Users::None => '3',
        Users::Out => '4',
    };
    let scope = match scope {
        Scope::All => '1',
        Scope::In => '2',
        Scope::Out => '3',
        Scope::None => '4',
    };
    format!("{room_id}-{users}1{scope}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_channel_matches_kuzzle() {
        let name = channel_name(
            "abc",
            Scope::parse(None).expect("default"),
            Users::parse(None).expect("default"),
        );
        assert_eq!(name, "abc-311");
    }

    #[test]
    fn every_option_pair_gets_its_own_channel() {
        let scopes = [Scope::All, Scope::In, Scope::Out, Scope::None];
        let users = [Users::All, Users::In, Users::Out, Users::None];
        let mut names = std::collections::HashSet::new();
        for scope in scopes {
            for user in users {
                assert!(names.insert(channel_name("r", scope, user)));
            }
        }
        assert_eq!(names.len(), 16);
    }

    #[test]
    fn bad_values_are_refused() {
        assert_eq!(Scope::parse(Some("sideways")), Err(ApiError::InvalidScope));
        assert_eq!(Users::parse(Some("everyone")), Err(ApiError::InvalidUsers));
        assert_eq!(Scope::parse(Some("out")), Ok(Scope::Out));
        assert_eq!(Users::parse(Some("all")), Ok(Users::All));
    }

    #[test]
    fn acceptance_follows_options() {
        assert!(Scope::All.accepts(true) && Scope::All.accepts(false));
        assert!(Scope::In.accepts(true) && !Scope::In.accepts(false));
        assert!(!Scope::None.accepts(true));
        assert!(Users::Out.accepts(false) && !Users::Out.accepts(true));
        assert!(!Users::None.accepts(true) && !Users::None.accepts(false));
    }
}
