//! A quiz night in real browsers (headless Chromium through WebDriver), the way a host runs one:
//! a projector page at 1280x720, four phones in two teams, one terminal player, in buzz mode.
//! The host sees each buzz as it lands, judges it, locks out a wrong team, edits a score,
//! removes a player, keeps everyone's seat through a reload and a reopened tab, starts a new game
//! with the same players, and downloads the night as CSV, which matches the screens and the
//! server's transcript. Also: sixty players on the projector's scoreboard, and page loads on a
//! server whose handshake time runs out on the browser's idle spare connections.
//!
//! Screenshots go to the target directory, and to `$ARRIVAL_SCREENSHOTS` if set (the README's
//! come from there: `ARRIVAL_SCREENSHOTS=docs/img cargo test --test quiz_night`).

mod common;

use std::io::Write;
use std::time::Duration;

use arrival::protocol::{self, ErrorKind, Frame, PROTOCOL_VERSION};
use common::webdriver::{chromium_unavailable, save, Browser, Driver};
use common::{client, connect_from, server, Proc};

/// Skips the test (loudly) where Chromium is not installed.
fn no_chromium(test: &str) -> bool {
    match chromium_unavailable() {
        Some(why) => {
            common::skip(test, &format!("the browser test {why}"));
            true
        }
        None => false,
    }
}

/// A server for a hosted quiz with its pages on; its address.
fn quiz_server(extra: &[&str]) -> (Proc, String) {
    let mut args = vec![
        "--rounds",
        "0",
        "--web",
        "on",
        "--host-key",
        "quiz-night-k3y-2026",
        "-v",
    ];
    args.extend_from_slice(extra);
    let (mut srv, addr) = server(&args);
    // The players' and the host's links.
    srv.next_line();
    srv.next_line();
    (srv, addr)
}

/// The host page on a 1280x720 projector, waiting for players.
fn projector<'d>(driver: &'d Driver, base: &str) -> Browser<'d> {
    let host = driver.browser(1280, 720);
    host.open(&format!("{base}/host?room=quiz#key=quiz-night-k3y-2026"));
    host.wait_text("#status", |t| t == "Waiting for players");
    host
}

/// A phone that takes a seat as `name` in `team`.
fn phone<'d>(driver: &'d Driver, base: &str, name: &str, team: &str) -> Browser<'d> {
    let page = driver.browser(360, 640);
    page.open(&format!("{base}/?room=quiz"));
    page.type_into("#name", name);
    page.type_into("#team", team);
    page.click("#join-button");
    page.wait_text("#count", |t| t.starts_with("In the room"));
    page
}

fn wait_state(page: &Browser, state: &str) {
    page.wait_for(state, |p| {
        (p.attribute("#buzzer", "data-state") == state).then_some(())
    });
}

/// The host's queue: (name, class) of each buzz, in order.
fn queue(host: &Browser) -> Vec<(String, String)> {
    let script = "return [...document.querySelectorAll('#queue li')].map(li => \
                  [li.querySelector('.who').textContent, li.className])";
    host.run(script)
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|v| {
            (
                v[0].as_str().unwrap_or_default().to_owned(),
                v[1].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// From another address, a join under `name` without its seat's secret: the refusal.
fn join_from_elsewhere(addr: &str, name: &str) -> (ErrorKind, String) {
    let mut s = connect_from([127, 0, 0, 2], addr);
    let seat = Frame::Seat {
        version: PROTOCOL_VERSION,
        room: Some("quiz".into()),
        name: name.into(),
        team: None,
        secret: None,
    };
    s.write_all(&protocol::encode(&seat).unwrap()).unwrap();
    let mut reader = protocol::FrameReader::new(futures::io::AllowStdIo::new(&mut s));
    loop {
        match arrival::rt::block_on(reader.read_frame()) {
            Ok(Some(Frame::Error { kind, message })) => return (kind, message),
            Ok(Some(Frame::Seated { .. })) => panic!("{name}'s seat was given away"),
            Ok(Some(_)) => {}
            other => panic!("{name}: {other:?}"),
        }
    }
}

/// Opens the host's player list (a folded section under the scoreboard).
/// Players of the terminal protocol, one per name, each taking its seat in the room and reading
/// everything the server sends until the end, on a thread of its own.
fn terminal_players(
    addr: &str,
    names: impl Iterator<Item = String>,
) -> Vec<std::thread::JoinHandle<std::io::Result<u64>>> {
    names
        .map(|name| {
            let mut p = std::net::TcpStream::connect(addr).unwrap();
            let seat = Frame::Seat {
                version: PROTOCOL_VERSION,
                room: Some("quiz".into()),
                name,
                team: None,
                secret: None,
            };
            p.write_all(&protocol::encode(&seat).unwrap()).unwrap();
            std::thread::spawn(move || std::io::copy(&mut p, &mut std::io::sink()))
        })
        .collect()
}

fn manage(host: &Browser) {
    host.run("document.getElementById('manage').open = true");
}

#[test]
fn a_host_runs_a_quiz_bowl_night_with_two_teams_a_terminal_player_and_judgements() {
    if no_chromium("a_host_runs_a_quiz_bowl_night_with_two_teams_a_terminal_player_and_judgements")
    {
        return;
    }
    let (srv, addr) = quiz_server(&[]);
    let base = format!("http://{addr}");
    let driver = Driver::start();
    let host = projector(&driver, &base);
    // The projector shows where to join: the room, the link, and its QR code.
    assert_eq!(host.text("#join-room"), "quiz");
    assert_eq!(host.text("#join-link"), format!("{base}/?room=quiz"));
    host.wait_for("the QR code", |h| {
        (h.run("return document.getElementById('join-qr').naturalWidth")
            .as_u64()
            .unwrap_or(0)
            > 0)
        .then_some(())
    });

    let ann = phone(&driver, &base, "Ann", "Red");
    let amy = phone(&driver, &base, "Amy", "Red");
    let ben = phone(&driver, &base, "Ben", "Blue");
    let bea = phone(&driver, &base, "Bea", "Blue");
    let mut cid = client(
        "Cid",
        &addr,
        &[
            "--stay", "--room", "quiz", "--name", "Cid", "--team", "Green",
        ],
    );
    cid.wait_for("Cid's seat", |l| l == "Joined the quiz in room quiz as Cid");
    host.wait_text("#count", |t| t.starts_with("Players: 5 players"));
    save("host-join.png", &host.screenshot());

    // Ten points for a correct answer, five off for a wrong one.
    manage(&host);
    host.type_into("#points-correct", "10");
    host.type_into("#points-penalty", "5");
    host.click("#scoring button[type=submit]");
    host.run("document.getElementById('manage').open = false");

    // Question 1: Ann buzzes first; every screen names her while nobody else has pressed.
    host.click("#open");
    for page in [&ann, &amy, &ben, &bea] {
        wait_state(page, "go");
    }
    cid.wait_for("go", |l| l.starts_with("Round 1: go!"));
    // The time from Ann's press to the host's screen naming her, by the machine's clock (both
    // browsers read the same one): a figure for docs/performance.md, not a threshold.
    host.run(
        "window.upAt = 0; const s = document.getElementById('status'); \
         new MutationObserver(() => { if (!upAt && s.textContent === 'Ann is up') upAt = Date.now(); }) \
         .observe(s, { childList: true, characterData: true, subtree: true });",
    );
    let pressed = ann.run("document.getElementById('buzzer').click(); return Date.now()");
    host.wait_text("#status", |t| t == "Ann is up");
    let shown = host.run("return upAt");
    let to_host = shown.as_i64().unwrap() - pressed.as_i64().unwrap();
    eprintln!("from Ann's press to the host's screen naming her: {to_host} ms");
    for page in [&amy, &ben, &bea] {
        page.wait_text("#status", |t| t == "Ann is up");
    }
    ann.wait_text("#status", |t| t == "You're up!");
    cid.wait_for("Ann up", |l| l == "Ann is up");
    assert_eq!(queue(&host), [("Ann".to_owned(), "up".to_owned())]);
    save("host-up.png", &host.screenshot());
    save("player-up.png", &ann.screenshot());

    // Wrong: team Red is out of the question; Ben's buzz is taken and he is up.
    host.click("#wrong");
    ann.wait_text("#status", |t| t == "Wrong");
    amy.wait_text("#status", |t| t == "Locked out");
    save("player-locked.png", &amy.screenshot());
    ben.click("#buzzer");
    host.wait_text("#status", |t| t == "Ben is up");
    assert_eq!(
        queue(&host),
        [
            ("Ann".to_owned(), "wrong".to_owned()),
            ("Ben".to_owned(), "up".to_owned())
        ]
    );
    // Correct: ten points to Ben, the question is over.
    host.click("#correct");
    for page in [&ann, &amy, &ben, &bea] {
        page.wait_text("#result-title", |t| t == "Round 1");
    }
    cid.wait_for("Ben correct", |l| l == "Ben: correct, +10");
    let scores = host.rows("scores");
    assert_eq!(scores[0], "Ben\t10");
    assert_eq!(ann.rows("scores"), ben.rows("scores"));
    save("host-judged.png", &host.screenshot());

    // The host edits Bea's score and removes Zed, who joined from a terminal.
    let mut zed = common::Raw::connect(&addr);
    zed.send(&Frame::Seat {
        version: PROTOCOL_VERSION,
        room: Some("quiz".into()),
        name: "Zed".into(),
        team: None,
        secret: None,
    });
    host.wait_text("#count", |t| t.starts_with("Players: 6 players"));
    manage(&host);
    host.type_into("input[data-score='Bea']", "7");
    host.click("button[data-set='Bea']");
    host.wait_for("Bea's 7 points", |h| {
        h.rows("scores")
            .contains(&"Bea\t7".to_owned())
            .then_some(())
    });
    host.click("button[data-kick='Zed']");
    assert_eq!(
        zed.expect_error(),
        (
            ErrorKind::Forbidden,
            "the host removed you from this game".to_owned()
        )
    );
    host.wait_text("#count", |t| t.starts_with("Players: 5 players"));
    host.run("document.getElementById('manage').open = false");

    // Ben reloads; Bea closes the tab and opens the link again: both take their seats back,
    // with their points, without typing anything.
    ben.refresh();
    ben.wait_text("#count", |t| t.starts_with("In the room: 5 players"));
    bea.reopen(&format!("{base}/?room=quiz"));
    bea.wait_text("#count", |t| t.starts_with("In the room: 5 players"));
    host.wait_for("both back", |h| {
        let events = h.content("#events");
        (events.contains("Ben is back") && events.contains("Bea is back")).then_some(())
    });
    let seats = host.rows("roster");
    assert!(seats.iter().all(|r| !r.contains("away")), "{seats:?}");

    // Cid's terminal stalls (a phone locking its screen): from another address, his name is
    // refused all the same.
    cid.signal("STOP");
    std::thread::sleep(Duration::from_secs(2));
    let (kind, message) = join_from_elsewhere(&addr, "Cid");
    assert_eq!(kind, ErrorKind::InvalidName);
    assert!(
        message.contains("held for the device that took it"),
        "{message}"
    );
    cid.signal("CONT");

    // Question 2: Bea double-taps; the second tap costs nothing. She is right.
    host.click("#open");
    for page in [&ann, &amy, &ben, &bea] {
        wait_state(page, "go");
    }
    bea.click("#buzzer");
    bea.click("#buzzer");
    host.wait_text("#status", |t| t == "Bea is up");
    host.click("#correct");
    bea.wait_text("#result-title", |t| t == "Round 2");
    host.wait_for("Bea's 17", |h| {
        h.rows("scores")
            .contains(&"Bea\t17".to_owned())
            .then_some(())
    });
    assert!(host.rows("scores").contains(&"Ben\t10".to_owned()));

    // Question 3: the double tap left Bea in; Cid buzzes from the terminal, is wrong, and the
    // host moves on.
    host.click("#open");
    wait_state(&bea, "go");
    cid.wait_for("go", |l| l.starts_with("Round 3: go!"));
    cid.send_stdin("\n");
    host.wait_text("#status", |t| t == "Cid is up");
    cid.wait_for("Cid up", |l| l == "You are up: answer now!");
    host.click("#wrong");
    cid.wait_for("Cid wrong", |l| l == "Cid: wrong, -5");
    host.click("#next");
    for page in [&ann, &bea] {
        page.wait_text("#result-title", |t| t == "Round 3");
    }
    let before = host.rows("scores");

    // A new game with the same players: nobody joins again; scores start at zero.
    host.click("#new-game");
    host.wait_text("#open", |t| t == "Open question 1");
    host.wait_for("scores at zero", |h| {
        h.rows("scores")
            .iter()
            .all(|r| r.ends_with("\t0"))
            .then_some(())
    });
    host.click("#open");
    for page in [&ann, &amy, &ben, &bea] {
        wait_state(page, "go");
        assert!(
            page.attribute("#join", "hidden") == "true",
            "a phone had to join again"
        );
    }
    amy.click("#buzzer");
    host.wait_text("#status", |t| t == "Amy is up");
    host.click("#correct");
    amy.wait_text("#result-title", |t| t == "Round 1");
    cid.wait_for("game 2", |l| l == "Amy: correct, +10");

    // The night's record, as the host downloads it.
    let csv = host
        .run("return [CSV_HEADER, ...record].join('\\n')")
        .as_str()
        .unwrap()
        .to_owned();
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    let judged: Vec<(&str, &str, &str, &str, &str, &str)> = rows
        .iter()
        .map(|r| (r[0], r[1], r[3], r[4], r[10], r[11]))
        .collect();
    assert_eq!(
        judged,
        [
            ("1", "1", "Ann", "Red", "wrong", "-5"),
            ("1", "1", "Ben", "Blue", "correct", "10"),
            ("1", "2", "Bea", "Blue", "correct", "10"),
            ("1", "3", "Cid", "Green", "wrong", "-5"),
            ("2", "1", "Amy", "Red", "correct", "10"),
        ],
        "{csv}"
    );
    // Each row's total is what the scoreboard showed after its question.
    assert!(before.contains(&"Bea\t17".to_owned()), "{before:?}");
    assert_eq!(rows[2][12], "17");

    // The end of the night: a winner, on the podium.
    host.click("#finish");
    host.wait_text("#status", |t| t == "Amy wins!");
    let podium = host.content("#podium");
    assert!(podium.starts_with("FirstAmy10 points"), "{podium}");
    save("host-podium.png", &host.screenshot());
    for page in [&ann, &amy, &ben, &bea] {
        page.wait_text("#status", |t| t == "Session over");
    }
    cid.wait_for("the end", |l| l.starts_with("Session over"));
    assert_eq!(cid.finish().code, Some(0));
    drop((host, ann, amy, ben, bea));
    srv.signal("TERM");
    let out = srv.finish();
    // The server's transcript has the same record.
    let transcript: Vec<&str> = out
        .stdout
        .iter()
        .filter_map(|l| Some(l.split_once("Session [quiz] record ")?.1))
        .collect();
    assert_eq!(transcript, csv.lines().collect::<Vec<_>>());
}

#[test]
fn sixty_players_fit_the_projector_and_the_night_ends_on_a_podium() {
    if no_chromium("sixty_players_fit_the_projector_and_the_night_ends_on_a_podium") {
        return;
    }
    let (srv, addr) = quiz_server(&[]);
    let base = format!("http://{addr}");
    let driver = Driver::start();
    let host = projector(&driver, &base);
    // Sixty players from the terminal protocol, one with the longest name there is.
    let long = "W".repeat(arrival::names::MAX_NAME_CHARS);
    let players = terminal_players(
        &addr,
        (0..60).map(|i| {
            if i == 0 {
                long.clone()
            } else {
                format!("Player {i:02}")
            }
        }),
    );
    host.wait_text("#count", |t| t.starts_with("Players: 60 players"));
    // Scores to rank: the host gives each a different score, and the long name the most.
    manage(&host);
    for i in [0usize, 1, 2, 3, 4, 5, 6, 7, 8, 9] {
        let name = if i == 0 {
            long.clone()
        } else {
            format!("Player {i:02}")
        };
        let points = if i == 0 { 99 } else { 50 - i as u64 };
        host.run(&format!(
            "const n = {name:?}; document.querySelector(`input[data-score='${{n}}']`).value = '{points}'; \
             document.querySelector(`button[data-set='${{n}}']`).click();"
        ));
    }
    // Two tie for third.
    host.run(
        "document.querySelector(\"input[data-score='Player 03']\").value = '48'; \
         document.querySelector(\"button[data-set='Player 03']\").click();",
    );
    host.wait_for("the scores set", |h| {
        h.rows("scores")
            .first()
            .is_some_and(|r| r.ends_with("\t99"))
            .then_some(())
    });
    host.run("document.getElementById('manage').open = false");
    let board = host.rows("scores");
    assert_eq!(board.len(), 8, "{board:?}");
    assert_eq!(host.text("#more"), "and 52 more");
    // The page fits the projector: nothing below 720 pixels, nothing beside 1280, and the long
    // name is cut with an ellipsis, its points still shown.
    let fits = host.run(
        "const d = document.documentElement; \
         const cell = document.querySelector('#scores tr td'); \
         return [d.scrollHeight, d.scrollWidth, cell.scrollWidth > cell.clientWidth, \
                 getComputedStyle(cell).textOverflow, \
                 document.querySelector('#scores tr td:last-child').getBoundingClientRect().right, \
                 innerWidth, innerHeight]",
    );
    assert_eq!(
        (fits[5].as_u64(), fits[6].as_u64()),
        (Some(1280), Some(720))
    );
    assert!(fits[0].as_u64().unwrap() <= 720, "page height {fits}");
    assert!(fits[1].as_u64().unwrap() <= 1280, "page width {fits}");
    assert_eq!(fits[2], true, "the long name is cut: {fits}");
    assert_eq!(fits[3], "ellipsis");
    assert!(fits[4].as_f64().unwrap() <= 1280.0, "{fits}");
    save("host-sixty.png", &host.screenshot());

    host.click("#finish");
    host.wait_text("#status", |t| t == format!("{long} wins!"));
    let places =
        host.run("return [...document.querySelectorAll('#podium li')].map(li => li.textContent)");
    let places: Vec<&str> = places
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        places,
        [
            format!("First{long}99 points").as_str(),
            "SecondPlayer 0149 points",
            "Third (tie)Player 02 and Player 0348 points",
        ]
    );
    save("host-sixty-podium.png", &host.screenshot());
    // The session's end closes every player's connection.
    for p in players {
        p.join().unwrap().unwrap();
    }
    drop(host);
    srv.signal("TERM");
    assert_eq!(srv.finish().code, Some(0));
}

/// A room bigger than one frame lists: the host page's list holds the seats with the most
/// points, and the host reaches a player beyond it by name; its score puts it on the projector.
#[test]
fn in_a_room_past_one_frame_the_host_reaches_any_player_by_name() {
    if no_chromium("in_a_room_past_one_frame_the_host_reaches_any_player_by_name") {
        return;
    }
    let (srv, addr) = quiz_server(&[]);
    let base = format!("http://{addr}");
    let driver = Driver::start();
    let host = projector(&driver, &base);
    let listed = arrival::session::fitting_parties();
    let players = terminal_players(&addr, (0..listed + 5).map(|i| format!("Player {i:03}")));
    let last = format!("Player {:03}", listed + 4);
    host.wait_text("#count", |t| {
        t.starts_with(&format!("Players: {listed} players"))
    });
    manage(&host);
    assert_eq!(host.rows("roster").len(), listed);
    host.type_into("#any-name", &last);
    host.type_into("#any-points", "42");
    host.run("document.querySelector('#any-player button[type=submit]').click()");
    host.wait_for("the last seat on the scoreboard", |h| {
        h.rows("scores")
            .first()
            .is_some_and(|r| r == &format!("{last}\t42"))
            .then_some(())
    });
    // Every name in the list is on screen, not cut to nothing by the other columns, and every
    // row's buttons are within the page.
    let shown = host.run(
        "return [...document.querySelectorAll('#roster tr')].every(tr => { \
           const name = tr.querySelector('td'); \
           const last = tr.querySelector('td:last-child button:last-child'); \
           return name.clientWidth > 0 && name.scrollWidth <= name.clientWidth \
             && last.getBoundingClientRect().right <= innerWidth; })",
    );
    assert_eq!(shown, true, "a player's name or buttons are off the page");
    host.run("document.getElementById('any-player').scrollIntoView()");
    save("host-any-player.png", &host.screenshot());
    host.click("#finish");
    host.wait_text("#status", |t| t == format!("{last} wins!"));
    for p in players {
        p.join().unwrap().unwrap();
    }
    drop(host);
    srv.signal("TERM");
    assert_eq!(srv.finish().code, Some(0));
}

#[test]
fn every_page_loads_after_the_browsers_spare_connections_time_out() {
    if no_chromium("every_page_loads_after_the_browsers_spare_connections_time_out") {
        return;
    }
    // A short handshake time: a connection Chromium opens ahead of need and leaves idle is
    // closed by the server long before the next page load uses it.
    let (_srv, addr) = quiz_server(&["--handshake-timeout", "1s"]);
    let base = format!("http://{addr}");
    let driver = Driver::start();
    let phone = driver.browser(360, 640);
    let mut loaded = 0;
    for i in 0..20 {
        phone.open(&format!("{base}/?room=quiz&load={i}"));
        // Time for the spare connections to idle past the handshake time.
        std::thread::sleep(Duration::from_millis(1300));
        let title = phone.run("return document.title");
        let form = phone.run("return !!document.getElementById('join-form')");
        if title == "arrival: buzzer" && form == true {
            loaded += 1;
        } else {
            eprintln!("load {i}: title {title}, body {:?}", phone.text("body"));
        }
    }
    println!("{loaded} of 20 page loads worked");
    assert_eq!(loaded, 20);
}
