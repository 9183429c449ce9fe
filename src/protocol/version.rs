//! Protocol versions: which numbers this build speaks, and what each one can say. Code that
//! decides by version asks a [`Version`] for a capability rather than comparing numbers.

/// The newest protocol version this build speaks; sent in `Hello` and `Join`. Version 2 adds
/// quiz sessions (`Join` .. `SessionOver`); version 3 adds each party's standing in a result, the
/// round trip's source, and the early-buzz notice (`Outcome`, `Early`); version 4 adds the room's
/// roster, the session's end with its reason, a leaver's standing, and the host who opens rounds
/// (`Host`, `Roster`, `Open`, `Finish`, `Over`); version 5 adds the session's ranking (`Rules`);
/// version 6 adds buzz mode and the host's controls, seats' secrets and teams (`Seat`, `Seated`,
/// `Lineup`, `Buzzes`, `Control`).
/// A server answers in the client's own version, so an older client plays exactly as before.
pub const PROTOCOL_VERSION: u16 = 6;

/// The oldest protocol version this build still speaks.
pub const OLDEST_VERSION: u16 = 1;

/// A protocol version this build speaks (see [`PROTOCOL_VERSION`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(u16);

impl Version {
    pub const OLDEST: Version = Version(OLDEST_VERSION);
    pub const NEWEST: Version = Version(PROTOCOL_VERSION);

    /// The version numbered `number`, if this build speaks it; otherwise the one-line reason.
    pub fn spoken(number: u16) -> Result<Version, String> {
        if (OLDEST_VERSION..=PROTOCOL_VERSION).contains(&number) {
            Ok(Version(number))
        } else {
            Err(format!(
                "unsupported protocol version {number}; this server speaks versions \
                 {OLDEST_VERSION} to {PROTOCOL_VERSION}"
            ))
        }
    }

    /// Its number, as frames carry it.
    pub fn number(self) -> u16 {
        self.0
    }

    /// Quiz sessions: `Join`, `Ping`/`Pong`, `Go`, `Answer`, `Result`, `SessionOver`.
    pub fn has_sessions(self) -> bool {
        self.0 >= 2
    }

    /// Each party's standing in a result and the round trip's source (`Outcome`), and the
    /// early-buzz notice (`Early`).
    pub fn has_standings(self) -> bool {
        self.0 >= 3
    }

    /// Hosts and rosters: `Host`, `Roster`, `Open`, `Finish`, `Over`, and a leaver's standing.
    pub fn has_hosts(self) -> bool {
        self.0 >= 4
    }

    /// The session's ranking, told on joining (`Rules`).
    pub fn has_rules(self) -> bool {
        self.0 >= 5
    }

    /// Buzz mode, the host's controls, seats' secrets and teams: `Seat`, `Seated`, `Lineup`,
    /// `Buzzes`, `Control`, and the `Correct` and `Wrong` standings.
    pub fn has_buzz(self) -> bool {
        self.0 >= 6
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_version_has_the_capabilities_it_added_and_no_later_ones() {
        let caps = |v: u16| {
            let v = Version::spoken(v).unwrap();
            (
                v.has_sessions(),
                v.has_standings(),
                v.has_hosts(),
                v.has_rules(),
                v.has_buzz(),
            )
        };
        assert_eq!(caps(1), (false, false, false, false, false));
        assert_eq!(caps(2), (true, false, false, false, false));
        assert_eq!(caps(3), (true, true, false, false, false));
        assert_eq!(caps(4), (true, true, true, false, false));
        assert_eq!(caps(5), (true, true, true, true, false));
        assert_eq!(caps(6), (true, true, true, true, true));
        assert!(Version::spoken(0).is_err());
        assert_eq!(
            Version::spoken(PROTOCOL_VERSION + 1).unwrap_err(),
            "unsupported protocol version 7; this server speaks versions 1 to 6"
        );
    }
}
