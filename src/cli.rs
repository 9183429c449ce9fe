//! Helpers the binaries share: argument parsers and logging setup. Nothing here runs a server
//! or a client.

use std::time::Duration;

/// Parses the command line. Usage errors exit with status 2 (clap 2 would use 1), `--help` and
/// `--version` print to stdout and exit 0.
pub fn parse_args<T: structopt::StructOpt>() -> T {
    match T::from_args_safe() {
        Ok(args) => args,
        Err(e) if e.use_stderr() => {
            eprintln!("{}", e.message);
            std::process::exit(2);
        }
        Err(e) => {
            println!("{}", e.message);
            std::process::exit(0);
        }
    }
}

/// Parses a duration given in (possibly fractional) seconds: `10`, `0.5`.
pub fn parse_seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds"))?;
    Duration::try_from_secs_f64(secs).map_err(|_| format!("`{s}` is not a valid duration"))
}

/// Diagnostics are off unless asked for: femme writes to stdout, which carries the transcript.
/// `-v` warnings, `-vv` info, `-vvv` debug.
pub fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => return,
        1 => log::LevelFilter::Warn,
        2 => log::LevelFilter::Info,
        _ => log::LevelFilter::Debug,
    };
    femme::with_level(level);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_parse() {
        assert_eq!(parse_seconds("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_seconds("0.25"), Ok(Duration::from_millis(250)));
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("ten").is_err());
    }
}
