//! Players in a real browser: headless Chromium, driven through WebDriver, plays a hosted quiz
//! with `arrival-client --stay` in one room, on the server's own port; a fourth player joins
//! during round 2 and plays from round 3. Installs Debian's
//! chromium and chromium-driver if they are missing.
//!
//! Screenshots of the player page (phone size: at go, and after a result) and the host page
//! (1280x720) go to the target directory, and to `$ARRIVAL_SCREENSHOTS` if set.

mod common;

use std::collections::BTreeMap;

use common::webdriver::{chromium_unavailable, save, Driver};
use common::{client, server, Proc};

const ROUNDS: u64 = 3;

/// The client's lines up to and including the first that `pred` picks out.
fn client_until(cid: &mut Proc, what: &str, pred: impl Fn(&str) -> bool) -> String {
    cid.wait_for(what, pred)
}

#[test]
fn a_host_page_two_player_pages_and_a_terminal_player_play_three_rounds() {
    if let Some(why) = chromium_unavailable() {
        common::skip(
            "a_host_page_two_player_pages_and_a_terminal_player_play_three_rounds",
            &format!("the browser test {why}"),
        );
        return;
    }
    let (mut srv, addr) = server(&[
        "--rounds",
        "0",
        "--web",
        "on",
        "--host-key",
        "quiz-night-k3y-2026",
        "--answer-timeout",
        "20s",
        // The race a quiz without a host plays: the fastest answer scores. Buzz mode, where the
        // host judges each buzz, has its own test (tests/quiz_night.rs).
        "--hosted-mode",
        "race",
        "-v",
    ]);
    // The links the server prints for the host and the players.
    let players_link = srv.next_line();
    let host_link = srv.next_line();
    let base = format!("http://{addr}");
    assert_eq!(players_link, format!("Players open {base}/?room=quiz"));
    // The key was given, so the server never writes it: the host types it, or adds it.
    assert_eq!(
        host_link,
        format!("The host opens {base}/host?room=quiz and types the host key")
    );

    let driver = Driver::start();
    let host = driver.browser(1280, 720);
    host.open(&format!("{base}/host?room=quiz#key=quiz-night-k3y-2026"));
    host.wait_text("#status", |t| t == "Waiting for players");
    // The key leaves the address bar (and the history) as soon as the page has read it.
    assert_eq!(
        host.run("return location.href"),
        format!("{base}/host?room=quiz").as_str()
    );

    let ann = driver.browser(360, 640);
    let ben = driver.browser(360, 640);
    for (page, name) in [(&ann, "Ann"), (&ben, "Ben")] {
        page.open(&format!("{base}/?room=quiz"));
        page.type_into("#name", name);
        page.click("#join-button");
        page.wait_text("#count", |t| t.starts_with("In the room"));
    }
    let mut cid = client("Cid", &addr, &["--stay", "--room", "quiz", "--name", "Cid"]);
    client_until(&mut cid, "Cid's welcome", |l| {
        l == "Joined the quiz in room quiz as Cid"
    });
    let in_room = client_until(&mut cid, "the room", |l| l.starts_with("In the room:"));
    assert_eq!(in_room, "In the room: Ann, Ben, Cid (3 players)");
    // Everyone sees all three, by name.
    host.wait_text("#count", |t| t.starts_with("Players: 3 players"));
    ann.wait_text("#count", |t| t == "In the room: 3 players");
    ann.wait_text("#events", |t| t.contains("Cid joined (3 players)"));
    let roster = host
        .run("return document.getElementById('roster').textContent")
        .as_str()
        .unwrap_or_default()
        .to_owned();
    for name in ["Ann", "Ben", "Cid"] {
        assert!(roster.contains(name), "host roster: {roster}");
    }

    let dee = driver.browser(360, 640);
    dee.open(&format!("{base}/?room=quiz"));
    let mut results = Vec::new();
    for round in 1..=ROUNDS {
        host.wait_text("#open", |t| t == format!("Open question {round}"));
        host.wait_for("the open button", |h| {
            (h.attribute("#open", "disabled").is_empty()).then_some(())
        });
        host.click("#open");
        // The buzzers open at GO: Ann clicks, Ben presses Space, Cid presses Enter.
        for page in [&ann, &ben] {
            page.wait_for("GO", |p| {
                (p.attribute("#buzzer", "data-state") == "go").then_some(())
            });
        }
        client_until(&mut cid, "go", |l| {
            l.starts_with(&format!("Round {round}: go!"))
        });
        if round == 2 {
            // Dee joins while round 2 is open: she is told she plays from round 3.
            dee.type_into("#name", "Dee");
            dee.click("#join-button");
            dee.wait_text("#detail", |t| t == "You play from round 3.");
            assert_eq!(dee.text("#status"), "Round 2 is under way");
            client_until(&mut cid, "Dee's join", |l| l == "Dee joined (4 players)");
        }
        if round == ROUNDS {
            save("player-go.png", &ben.screenshot());
        }
        ann.click("#buzzer");
        ben.press_key(" ");
        cid.send_stdin("\n");
        if round == 3 {
            dee.wait_for("GO", |p| {
                (p.attribute("#buzzer", "data-state") == "go").then_some(())
            });
            // Round 2's result, had Dee been sent it, would have come before this Go.
            let title = dee.run("return document.getElementById('result-title').textContent");
            assert_eq!(title, "Result", "Dee was shown a round she did not play");
            dee.press_key("\u{E007}"); // Enter
        }
        for page in [&ann, &ben] {
            page.wait_text("#result-title", |t| t == format!("Round {round}"));
        }
        host.wait_text("#result-title", |t| t == format!("Question {round}"));
        let players = if round < 3 { 3 } else { 4 };
        let sentence = client_until(&mut cid, "the result", |l| {
            l.starts_with(&format!("Round {round}: "))
                && !l.contains("go!")
                && !l.contains("get ready")
        });
        // One result on every screen: the same order, figures and scores.
        let host_rows = host.rows("result-rows");
        assert_eq!(host_rows.len(), players, "{host_rows:?}");
        assert_eq!(ann.rows("result-rows"), host_rows);
        assert_eq!(ben.rows("result-rows"), host_rows);
        let scores = host.rows("scores");
        assert_eq!(ann.rows("scores"), scores);
        assert_eq!(ben.rows("scores"), scores);
        if round == 3 {
            dee.wait_text("#result-title", |t| t == "Round 3");
            assert_eq!(dee.rows("result-rows"), host_rows);
            assert_eq!(dee.rows("scores"), scores);
        }
        assert_eq!(
            host.text("#result-text"),
            sentence,
            "the host shows the client's sentence"
        );
        assert_eq!(ann.text("#result-text"), sentence);
        assert_eq!(ben.text("#result-text"), sentence);
        // Everybody answered: the sentence names all three in the table's order.
        let order: Vec<String> = host_rows
            .iter()
            .map(|r| {
                r.split('\t')
                    .next()
                    .unwrap()
                    .split(". ")
                    .nth(1)
                    .unwrap()
                    .to_owned()
            })
            .collect();
        let mut at = 0;
        for name in &order {
            at += sentence[at..]
                .find(name.as_str())
                .unwrap_or_else(|| panic!("{name} not in {sentence}"));
        }
        let cid_scores = client_until(&mut cid, "the scores", |l| l.starts_with("Scores: "));
        let listed: Vec<String> = scores.iter().map(|r| r.replace('\t', " ")).collect();
        assert_eq!(cid_scores, format!("Scores: {}", listed.join(", ")));
        results.push((sentence, scores));
    }

    // Screenshots, as a quiz host would show them.
    save("player-result.png", &ann.screenshot());
    save("host.png", &host.screenshot());

    host.click("#finish");
    let over = host.wait_text("#detail", |t| t.starts_with("After "));
    assert_eq!(
        over,
        format!("After {ROUNDS} questions: the host ended it.")
    );
    for page in [&ann, &ben, &dee] {
        page.wait_text("#status", |t| t == "Session over");
        assert_eq!(
            page.text("#detail"),
            format!("Session over after {ROUNDS} rounds: the host ended it.")
        );
    }
    let last_scores = &results.last().unwrap().1;
    let final_line = client_until(&mut cid, "the end", |l| l.starts_with("Session over"));
    let listed: Vec<String> = last_scores.iter().map(|r| r.replace('\t', " ")).collect();
    assert_eq!(
        final_line,
        format!(
            "Session over after {ROUNDS} rounds (the host ended it). Final scores: {}",
            listed.join(", ")
        )
    );
    let points: u64 = last_scores
        .iter()
        .map(|r| r.split('\t').nth(1).unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(points, ROUNDS, "one point a round");
    assert_eq!(cid.finish().code, Some(0));

    // Nothing was asked of anywhere but the server under test.
    let mut asked: BTreeMap<String, usize> = BTreeMap::new();
    // Each page offers to join (or host) again.
    for page in [&ann, &ben, &dee] {
        page.wait_for("Join again", |p| {
            p.attribute("#again", "hidden").is_empty().then_some(())
        });
    }
    host.wait_for("Host again", |p| {
        p.attribute("#again", "hidden").is_empty().then_some(())
    });
    for page in [&host, &ann, &ben, &dee] {
        for url in page.requested_urls() {
            *asked.entry(url).or_default() += 1;
        }
    }
    assert!(!asked.is_empty(), "the performance log recorded nothing");
    for url in asked.keys() {
        let ours =
            url.starts_with(&format!("{base}/")) || url.starts_with(&format!("ws://{addr}/"));
        assert!(ours, "a page asked for {url}; all it asked for: {asked:?}");
    }
    assert!(asked.keys().any(|u| u.starts_with("ws://")), "{asked:?}");
    drop((host, ann, ben, dee));
    srv.signal("TERM");
    let out = srv.finish();
    assert_eq!(out.code, Some(0));
    assert!(
        out.stdout
            .last()
            .is_some_and(|l| l.contains("1 quiz session of 3 rounds in all")),
        "{:?}",
        out.stdout.last()
    );
}
