use std::pin::Pin;
use std::task::{Context, Poll};

use crate::rt::block_on;
use proptest::prelude::*;

use super::*;

/// An in-memory stream that hands out its bytes in the given chunk sizes (cycled), then EOF.
struct Chunked {
    data: Vec<u8>,
    pos: usize,
    chunks: Vec<usize>,
    turn: usize,
}

impl Chunked {
    fn new(data: Vec<u8>, chunks: Vec<usize>) -> Self {
        Chunked {
            data,
            pos: 0,
            chunks,
            turn: 0,
        }
    }
    fn one_byte_at_a_time(data: Vec<u8>) -> Self {
        Self::new(data, vec![1])
    }
}

impl AsyncRead for Chunked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let chunk = self.chunks[self.turn % self.chunks.len()].max(1);
        self.turn += 1;
        let n = chunk.min(buf.len()).min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Poll::Ready(Ok(n))
    }
}

/// Hands out its bytes like `Chunked`, but answers every other poll with `Pending` (waking
/// itself at once): any read needing more than one chunk is interrupted part-way.
struct Stutter {
    inner: Chunked,
    pending_next: bool,
}

impl AsyncRead for Stutter {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        if self.pending_next {
            self.pending_next = false;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.pending_next = true;
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

/// Yields its bytes, then never again: a peer that went silent mid-frame.
struct ThenSilence(Chunked);

impl AsyncRead for ThenSilence {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        if self.0.pos == self.0.data.len() {
            return Poll::Pending;
        }
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

/// X's Alice, then Y's Bob `margin` microseconds later.
fn alice_before_bob(margin: u64) -> Vec<Arrival> {
    vec![
        Arrival {
            label: "X".into(),
            name: "Alice".into(),
            after_micros: 0,
        },
        Arrival {
            label: "Y".into(),
            name: "Bob".into(),
            after_micros: margin,
        },
    ]
}

fn every_frame() -> Vec<Frame> {
    vec![
        Frame::Hello {
            version: PROTOCOL_VERSION,
            room: None,
        },
        Frame::Hello {
            version: 7,
            room: Some("quiz-42".into()),
        },
        Frame::Welcome {
            version: PROTOCOL_VERSION,
        },
        Frame::Connected {
            round: 1,
            label: "X".into(),
        },
        Frame::Message {
            name: "Alice".into(),
        },
        Frame::Message {
            name: "Zoë 李".into(),
        },
        Frame::Ack {
            text: "X: Alice received before Y: Bob".into(),
            order: alice_before_bob(1234),
        },
        Frame::error(ErrorKind::PartyLeft, "Client Y left"),
        Frame::error(ErrorKind::ShuttingDown, ""),
        Frame::ChatOpen,
        Frame::Chat {
            line: "hi there".into(),
        },
        Frame::Relayed {
            from: "X".into(),
            line: "hi there".into(),
        },
        Frame::ChatOver {
            message: "Client Y said Bye".into(),
        },
        Frame::Early { round: 4 },
        Frame::Outcome(Box::new(outcome())),
    ]
}

/// The documented `Outcome`: Ann answered, 1.5 ms after go, 1 ms round trip from the kernel.
fn outcome() -> RoundOutcome {
    RoundOutcome {
        round: 3,
        text: "R3".into(),
        order: vec![Placing {
            name: "Ann".into(),
            standing: Standing::Answered,
            after_go_micros: Some(1500),
            rtt_micros: Some(1000),
            rtt_source: RttSource::Kernel,
            reaction_micros: Some(500),
        }],
        scores: vec![Score {
            name: "Ann".into(),
            points: 2,
        }],
    }
}

fn read_all(mut reader: FrameReader<Chunked>) -> (Vec<Frame>, Result<(), ReadError>) {
    block_on(async {
        let mut frames = Vec::new();
        loop {
            match reader.read_frame().await {
                Ok(Some(f)) => frames.push(f),
                Ok(None) => return (frames, Ok(())),
                Err(e) => return (frames, Err(e)),
            }
        }
    })
}

fn stream_of(frames: &[Frame]) -> Vec<u8> {
    frames.iter().flat_map(|f| encode(f).unwrap()).collect()
}

#[test]
fn every_frame_round_trips() {
    let frames = every_frame();
    let (got, end) = read_all(FrameReader::new(Chunked::new(
        stream_of(&frames),
        vec![4096],
    )));
    assert!(end.is_ok());
    assert_eq!(got, frames);
}

#[test]
fn payload_is_exactly_bincode_serialize() {
    // PROTOCOL.md promises plain `bincode::serialize` (1.3.3, fixint, little-endian).
    for frame in every_frame() {
        let bytes = encode(&frame).unwrap();
        let plain = bincode::serialize(&frame).unwrap();
        assert_eq!(&bytes[HEADER_LEN..], &plain[..]);
        assert_eq!(&bytes[..HEADER_LEN], &(plain.len() as u32).to_be_bytes());
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn documented_examples() {
    // The hex dumps in PROTOCOL.md, byte for byte; if this fails, the document is wrong.
    let cases: Vec<(Frame, &str)> = vec![
        (
            Frame::Host {
                version: 4,
                room: Some("quiz".into()),
                key: "k3y".into(),
            },
            "00 00 00 1e 13 00 00 00 04 00 01 04 00 00 00 00 00 00 00 71 75 69 7a 03 00 00 00 00 00 00 00 6b 33 79",
        ),
        (Frame::Open, "00 00 00 04 15 00 00 00"),
        (
            Frame::Rules {
                ranking: Ranking::Reaction,
            },
            "00 00 00 08 18 00 00 00 01 00 00 00",
        ),
        (Frame::Finish, "00 00 00 04 16 00 00 00"),
        (
            Frame::Seat {
                version: 6,
                room: Some("quiz".into()),
                name: "Ann".into(),
                team: Some("Red".into()),
                secret: None,
            },
            "00 00 00 2b 19 00 00 00 06 00 01 04 00 00 00 00 00 00 00 71 75 69 7a 03 00 00 00 00 00 00 00 41 6e 6e 01 03 00 00 00 00 00 00 00 52 65 64 00",
        ),
        (
            Frame::Seated {
                secret: "5ec7e7".into(),
            },
            "00 00 00 12 1a 00 00 00 06 00 00 00 00 00 00 00 35 65 63 37 65 37",
        ),
        (Frame::Control(Control::Wrong), "00 00 00 08 1d 00 00 00 01 00 00 00"),
        (
            Frame::Control(Control::SetScore {
                name: "Ann".into(),
                points: 7,
            }),
            "00 00 00 1b 1d 00 00 00 03 00 00 00 03 00 00 00 00 00 00 00 41 6e 6e 07 00 00 00 00 00 00 00",
        ),
        (
            Frame::Over {
                why: OverReason::HostEnded,
                rounds: 3,
                scores: vec![Score {
                    name: "Ann".into(),
                    points: 2,
                }],
            },
            "00 00 00 2b 17 00 00 00 02 00 00 00 03 00 00 00 00 00 00 00 01 00 00 00 00 00 00 00 03 00 00 00 00 00 00 00 41 6e 6e 02 00 00 00 00 00 00 00",
        ),
        (
            Frame::Roster(Box::new(Roster {
                round: 2,
                open: false,
                needed: 2,
                hosted: true,
                answer_micros: 10_000_000,
                players: vec![Member {
                    name: "Ann".into(),
                    rtt_micros: Some(250),
                    rtt_source: RttSource::Kernel,
                    points: 1,
                    from_round: 1,
                }],
                change: Change::Joined { name: "Ann".into() },
            })),
            "00 00 00 59 14 00 00 00 02 00 00 00 00 00 00 00 00 02 00 00 00 01 80 96 98 00 00 00 00 00 01 00 00 00 00 00 00 00 03 00 00 00 00 00 00 00 41 6e 6e 01 fa 00 00 00 00 00 00 00 01 00 00 00 01 00 00 00 00 00 00 00 01 00 00 00 00 00 00 00 01 00 00 00 03 00 00 00 00 00 00 00 41 6e 6e",
        ),
        (
            Frame::error(ErrorKind::Forbidden, "wrong host key"),
            "00 00 00 1e 05 00 00 00 0a 00 00 00 0e 00 00 00 00 00 00 00 77 72 6f 6e 67 20 68 6f 73 74 20 6b 65 79",
        ),
        (
            Frame::Hello {
                version: 1,
                room: None,
            },
            "00 00 00 07 00 00 00 00 01 00 00",
        ),
        (
            Frame::Hello {
                version: 1,
                room: Some("quiz".into()),
            },
            "00 00 00 13 00 00 00 00 01 00 01 04 00 00 00 00 00 00 00 71 75 69 7a",
        ),
        (
            Frame::Welcome { version: 1 },
            "00 00 00 06 01 00 00 00 01 00",
        ),
        (
            Frame::Connected {
                round: 1,
                label: "X".into(),
            },
            "00 00 00 15 02 00 00 00 01 00 00 00 00 00 00 00 01 00 00 00 00 00 00 00 58",
        ),
        (
            Frame::Message {
                name: "Alice".into(),
            },
            "00 00 00 11 03 00 00 00 05 00 00 00 00 00 00 00 41 6c 69 63 65",
        ),
        (
            Frame::Ack {
                text: "X: Alice received before Y: Bob".into(),
                order: alice_before_bob(412),
            },
            "00 00 00 6d 04 00 00 00 1f 00 00 00 00 00 00 00 \
             58 3a 20 41 6c 69 63 65 20 72 65 63 65 69 76 65 \
             64 20 62 65 66 6f 72 65 20 59 3a 20 42 6f 62 02 \
             00 00 00 00 00 00 00 01 00 00 00 00 00 00 00 58 \
             05 00 00 00 00 00 00 00 41 6c 69 63 65 00 00 00 \
             00 00 00 00 00 01 00 00 00 00 00 00 00 59 03 00 \
             00 00 00 00 00 00 42 6f 62 9c 01 00 00 00 00 00 \
             00",
        ),
        (
            Frame::error(
                ErrorKind::RoundFull,
                "the round is full; this server runs a single round",
            ),
            "00 00 00 42 05 00 00 00 05 00 00 00 32 00 00 00 \
             00 00 00 00 74 68 65 20 72 6f 75 6e 64 20 69 73 \
             20 66 75 6c 6c 3b 20 74 68 69 73 20 73 65 72 76 \
             65 72 20 72 75 6e 73 20 61 20 73 69 6e 67 6c 65 \
             20 72 6f 75 6e 64",
        ),
    ];
    let chat_cases: Vec<(Frame, &str)> = vec![
        (Frame::ChatOpen, "00 00 00 04 06 00 00 00"),
        (
            Frame::Chat { line: "hi".into() },
            "00 00 00 0e 07 00 00 00 02 00 00 00 00 00 00 00 68 69",
        ),
        (
            Frame::Relayed {
                from: "X".into(),
                line: "hi".into(),
            },
            "00 00 00 17 08 00 00 00 01 00 00 00 00 00 00 00 58 02 00 00 00 00 00 00 00 68 69",
        ),
        (
            Frame::ChatOver {
                message: "over".into(),
            },
            "00 00 00 10 09 00 00 00 04 00 00 00 00 00 00 00 6f 76 65 72",
        ),
    ];
    let session_cases: Vec<(Frame, &str)> = vec![
        (
            Frame::Join {
                version: 2,
                room: Some("quiz".into()),
                name: "Ann".into(),
            },
            "00 00 00 1e 0a 00 00 00 02 00 01 04 00 00 00 00 00 00 00 71 75 69 7a 03 00 00 00 00 00 00 00 41 6e 6e",
        ),
        (Frame::Ping { seq: 7 }, "00 00 00 08 0b 00 00 00 07 00 00 00"),
        (Frame::Pong { seq: 7 }, "00 00 00 08 0c 00 00 00 07 00 00 00"),
        (
            Frame::Go { round: 3 },
            "00 00 00 0c 0d 00 00 00 03 00 00 00 00 00 00 00",
        ),
        (Frame::Answer, "00 00 00 04 0e 00 00 00"),
        (
            Frame::Result(Box::new(SessionResult {
                round: 3,
                text: "R3".into(),
                order: vec![Reaction {
                    name: "Ann".into(),
                    answered: true,
                    after_go_micros: Some(1500),
                    rtt_micros: Some(1000),
                    reaction_micros: Some(500),
                }],
                scores: vec![Score {
                    name: "Ann".into(),
                    points: 2,
                }],
            })),
            "00 00 00 60 0f 00 00 00 03 00 00 00 00 00 00 00 02 00 00 00 00 00 00 00 52 33 \
             01 00 00 00 00 00 00 00 03 00 00 00 00 00 00 00 41 6e 6e 01 01 dc 05 00 00 00 00 \
             00 00 01 e8 03 00 00 00 00 00 00 01 f4 01 00 00 00 00 00 00 01 00 00 00 00 00 00 \
             00 03 00 00 00 00 00 00 00 41 6e 6e 02 00 00 00 00 00 00 00",
        ),
        (
            Frame::SessionOver {
                scores: vec![Score {
                    name: "Ann".into(),
                    points: 2,
                }],
            },
            "00 00 00 1f 10 00 00 00 01 00 00 00 00 00 00 00 03 00 00 00 00 00 00 00 41 6e 6e \
             02 00 00 00 00 00 00 00",
        ),
    ];
    let v3_cases: Vec<(Frame, &str)> = vec![
        (
            Frame::Early { round: 3 },
            "00 00 00 0c 12 00 00 00 03 00 00 00 00 00 00 00",
        ),
        (
            Frame::Outcome(Box::new(outcome())),
            "00 00 00 67 11 00 00 00 03 00 00 00 00 00 00 00 02 00 00 00 00 00 00 00 52 33 \
             01 00 00 00 00 00 00 00 03 00 00 00 00 00 00 00 41 6e 6e 00 00 00 00 01 dc 05 00 \
             00 00 00 00 00 01 e8 03 00 00 00 00 00 00 01 00 00 00 01 f4 01 00 00 00 00 00 00 \
             01 00 00 00 00 00 00 00 03 00 00 00 00 00 00 00 41 6e 6e 02 00 00 00 00 00 00 00",
        ),
    ];
    let doc = include_str!("../../PROTOCOL.md")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let all = cases
        .into_iter()
        .chain(chat_cases)
        .chain(session_cases)
        .chain(v3_cases);
    for (frame, expected) in all {
        let expected = expected.split_whitespace().collect::<Vec<_>>().join(" ");
        assert_eq!(hex(&encode(&frame).unwrap()), expected, "{frame:?}");
        assert!(
            doc.contains(&expected),
            "PROTOCOL.md lacks the dump of {frame:?}: {expected}"
        );
    }
}

/// A version-2 peer gets the same result in its own frame: false starts as answered, in their
/// place; early and locked-out parties as not answered.
#[test]
fn an_outcome_reads_the_same_in_version_2() {
    let placing = |name: &str, standing, after: Option<u64>| Placing {
        name: name.into(),
        standing,
        after_go_micros: after,
        rtt_micros: Some(1000),
        rtt_source: RttSource::Kernel,
        reaction_micros: after.map(|a| a as i64 - 1000),
    };
    let outcome = RoundOutcome {
        order: vec![
            placing("Ann", Standing::Answered, Some(150_000)),
            placing("Ben", Standing::FalseStart, Some(20_000)),
            placing("Cid", Standing::Early, None),
            placing("Dan", Standing::NoAnswer, None),
        ],
        ..outcome()
    };
    let v2 = outcome.to_v2();
    assert_eq!(
        (v2.round, &v2.text, &v2.scores),
        (3, &outcome.text, &outcome.scores)
    );
    let seen: Vec<(&str, bool, Option<i64>)> = v2
        .order
        .iter()
        .map(|r| (r.name.as_str(), r.answered, r.reaction_micros))
        .collect();
    assert_eq!(
        seen,
        [
            ("Ann", true, Some(149_000)),
            ("Ben", true, Some(19_000)),
            ("Cid", false, None),
            ("Dan", false, None)
        ]
    );
}

#[test]
fn one_byte_at_a_time() {
    let frames = every_frame();
    let (got, end) = read_all(FrameReader::new(Chunked::one_byte_at_a_time(stream_of(
        &frames,
    ))));
    assert!(end.is_ok());
    assert_eq!(got, frames);
}

#[test]
fn clean_eof_before_a_frame_is_none() {
    let (got, end) = read_all(FrameReader::new(Chunked::new(vec![], vec![1])));
    assert!(got.is_empty());
    assert!(end.is_ok());
}

#[test]
fn eof_inside_the_prefix_is_truncated() {
    let (_, end) = read_all(FrameReader::new(Chunked::new(vec![0, 0], vec![1])));
    assert!(matches!(
        end,
        Err(ReadError::Truncated { have: 2, need: 4 })
    ));
}

#[test]
fn eof_inside_the_payload_is_truncated() {
    let mut bytes = encode(&Frame::Message {
        name: "Alice".into(),
    })
    .unwrap();
    let full = bytes.len();
    bytes.truncate(full - 2);
    let (_, end) = read_all(FrameReader::new(Chunked::new(bytes, vec![3])));
    match end {
        Err(ReadError::Truncated { have, need }) => {
            assert_eq!((have, need), (full - 2, full));
        }
        other => panic!("expected Truncated, got {other:?}"),
    }
}

#[test]
fn oversized_length_is_rejected_without_allocating() {
    let (_, end) = read_all(FrameReader::new(Chunked::new(
        vec![0xff, 0xff, 0xff, 0xff, 1, 2, 3],
        vec![4096],
    )));
    assert!(matches!(end, Err(ReadError::TooLarge { len: u32::MAX })));

    let mut reader = FrameReader::new(Chunked::new(vec![0xff, 0xff, 0xff, 0xff], vec![1]));
    let _ = block_on(reader.read_frame());
    assert!(reader.buffer_capacity() <= HEADER_LEN + READ_AHEAD);
}

#[test]
fn just_over_the_maximum_is_rejected_and_the_maximum_is_not() {
    let over = (MAX_FRAME_LEN + 1).to_be_bytes().to_vec();
    let (_, end) = read_all(FrameReader::new(Chunked::new(over, vec![4])));
    assert!(matches!(end, Err(ReadError::TooLarge { len }) if len == MAX_FRAME_LEN + 1));

    // A maximal frame is accepted as far as its length goes (the payload itself is garbage).
    let mut at_max = MAX_FRAME_LEN.to_be_bytes().to_vec();
    at_max.resize(HEADER_LEN + MAX_FRAME_LEN as usize, 0xAA);
    let (_, end) = read_all(FrameReader::new(Chunked::new(at_max, vec![8192])));
    assert!(matches!(end, Err(ReadError::Malformed(_))));
}

#[test]
fn zero_length_is_an_error() {
    let (_, end) = read_all(FrameReader::new(Chunked::new(vec![0, 0, 0, 0], vec![4])));
    assert!(matches!(end, Err(ReadError::Empty)));
}

#[test]
fn unknown_frame_kind_is_malformed() {
    // Variant index 99 does not exist.
    let bytes = vec![0, 0, 0, 4, 99, 0, 0, 0];
    let (_, end) = read_all(FrameReader::new(Chunked::new(bytes, vec![8])));
    assert!(matches!(end, Err(ReadError::Malformed(_))));
}

#[test]
fn undecodable_payloads_are_errors_not_panics() {
    let cases: Vec<Vec<u8>> = vec![
        // Message whose string length claims 2^60 bytes.
        vec![0, 0, 0, 12, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10],
        // Message with invalid UTF-8.
        vec![0, 0, 0, 14, 3, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xfe],
        // Welcome with a trailing byte.
        vec![0, 0, 0, 7, 1, 0, 0, 0, 1, 0, 9],
        // Ack whose vector claims 2^40 entries.
        vec![
            0, 0, 0, 20, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0,
        ],
    ];
    for bytes in cases {
        let (_, end) = read_all(FrameReader::new(Chunked::new(bytes.clone(), vec![64])));
        assert!(
            matches!(end, Err(ReadError::Malformed(_))),
            "{bytes:?} gave {end:?}"
        );
    }
}

#[test]
fn a_frame_that_stalls_half_way_times_out() {
    let stalled = ThenSilence(Chunked::new(vec![0, 0], vec![2]));
    let mut reader = FrameReader::new(stalled).with_frame_timeout(Some(Duration::from_millis(50)));
    let end = block_on(reader.read_frame());
    assert!(
        matches!(end, Err(ReadError::Stalled { have: 2, .. })),
        "{end:?}"
    );
}

/// Reads really cancelled half-way through a frame (the reader returns `Pending` between chunks
/// and the read future is dropped each time) lose no bytes and resume where they stopped.
#[test]
fn cancelling_a_read_mid_frame_loses_no_bytes() {
    let frames = every_frame();
    let bytes = stream_of(&frames);
    block_on(async {
        let stutter = Stutter {
            inner: Chunked::new(bytes, vec![3, 1, 7]),
            pending_next: false,
        };
        let mut reader = FrameReader::new(stutter);
        let mut got = Vec::new();
        let mut cancelled_mid_frame = 0;
        while got.len() < frames.len() {
            match futures::poll!(Box::pin(reader.read_frame())) {
                Poll::Ready(r) => got.push(r.unwrap().unwrap()),
                // Dropped here, part-way through a frame.
                Poll::Pending if reader.filled > 0 => cancelled_mid_frame += 1,
                Poll::Pending => {}
            }
        }
        assert_eq!(got, frames);
        assert!(
            cancelled_mid_frame >= frames.len(),
            "only {cancelled_mid_frame} reads were cancelled mid-frame"
        );
    });
}

#[test]
fn text_where_a_frame_was_expected_names_the_wire() {
    let mut reader = FrameReader::new(Chunked::new(b"Client X: Alice".to_vec(), vec![64]));
    let end = block_on(reader.read_frame());
    match end {
        Err(e @ ReadError::Text { .. }) => {
            assert_eq!(e.kind(), ErrorKind::Protocol);
            assert!(e.to_string().starts_with("got text (\"Clie\"...)"), "{e}");
            assert!(e.to_string().contains("--wire text"), "{e}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_payload_that_ends_inside_a_field_says_so() {
    // Message whose name length (8 bytes) runs past the 6-byte payload.
    let bytes = vec![0, 0, 0, 6, 3, 0, 0, 0, 5, 0];
    let end = block_on(FrameReader::new(Chunked::new(bytes, vec![64])).read_frame());
    let e = end.unwrap_err().to_string();
    assert_eq!(
        e,
        "undecodable frame: the payload ends inside a field (a length or a value runs past the frame)"
    );
}

#[test]
fn cancelling_a_read_loses_no_bytes() {
    let frames = every_frame();
    let bytes = stream_of(&frames);
    block_on(async {
        let mut reader = FrameReader::new(Chunked::new(bytes, vec![3]));
        let mut got = Vec::new();
        while got.len() < frames.len() {
            // Poll each read once and drop it: the next call must resume where this one stopped.
            let once = futures::poll!(Box::pin(reader.read_frame()));
            if let Poll::Ready(r) = once {
                got.push(r.unwrap().unwrap());
            }
        }
        assert_eq!(got, frames);
    });
}

fn arb_frame() -> impl Strategy<Value = Frame> {
    let s = ".{0,40}";
    prop_oneof![
        (any::<u16>(), proptest::option::of(s))
            .prop_map(|(version, room)| Frame::Hello { version, room }),
        any::<u16>().prop_map(|version| Frame::Welcome { version }),
        (any::<u64>(), s).prop_map(|(round, label)| Frame::Connected { round, label }),
        s.prop_map(|name| Frame::Message { name }),
        (s, proptest::collection::vec((s, s, any::<u64>()), 0..5)).prop_map(|(text, order)| {
            Frame::Ack {
                text,
                order: order
                    .into_iter()
                    .map(|(label, name, after_micros)| Arrival {
                        label,
                        name,
                        after_micros,
                    })
                    .collect(),
            }
        }),
        Just(Frame::ChatOpen),
        s.prop_map(|line| Frame::Chat { line }),
        (s, s).prop_map(|(from, line)| Frame::Relayed { from, line }),
        s.prop_map(|message| Frame::ChatOver { message }),
        any::<u64>().prop_map(|round| Frame::Early { round }),
        (any::<u64>(), s, 0u8..5, proptest::option::of(any::<u64>())).prop_map(
            |(round, name, standing, after)| {
                let mut outcome = outcome();
                outcome.round = round;
                outcome.order[0].name = name;
                outcome.order[0].standing = [
                    Standing::Answered,
                    Standing::FalseStart,
                    Standing::Early,
                    Standing::LockedOut,
                    Standing::NoAnswer,
                ][standing as usize];
                outcome.order[0].after_go_micros = after;
                Frame::Outcome(Box::new(outcome))
            }
        ),
        (0u8..10, s).prop_map(|(k, message)| Frame::Error {
            kind: [
                ErrorKind::Version,
                ErrorKind::Protocol,
                ErrorKind::Malformed,
                ErrorKind::Timeout,
                ErrorKind::InvalidName,
                ErrorKind::RoundFull,
                ErrorKind::Busy,
                ErrorKind::PartyLeft,
                ErrorKind::RoundTimeout,
                ErrorKind::ShuttingDown,
            ][k as usize],
            message
        }),
    ]
}

/// Case count: `PROPTEST_CASES` overrides it (the one-off long run used 1,000,000).
fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2_000),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// Arbitrary bytes, arbitrarily chunked: the decoder ends with frames, a clean EOF or an
    /// error; it never panics and never holds more than one maximal frame plus read-ahead.
    #[test]
    fn arbitrary_bytes_never_panic_or_overallocate(
        bytes in proptest::collection::vec(any::<u8>(), 0..2048),
        chunks in proptest::collection::vec(1usize..64, 1..8),
        prefix in any::<u32>(),
    ) {
        // Half the cases start with an arbitrary length prefix, so large claims are common.
        let mut data = Vec::new();
        if prefix % 2 == 0 {
            data.extend_from_slice(&prefix.to_be_bytes());
        }
        data.extend_from_slice(&bytes);
        let mut reader = FrameReader::new(Chunked::new(data, chunks));
        block_on(async {
            for _ in 0..4096 {
                match reader.read_frame().await {
                    Ok(Some(_)) => continue,
                    Ok(None) | Err(_) => break,
                }
            }
        });
        prop_assert!(reader.buffer_capacity() <= HEADER_LEN + MAX_FRAME_LEN as usize + READ_AHEAD);
    }

    /// Every encoded frame decodes back to itself, whatever the chunking.
    #[test]
    fn encoded_frames_decode_to_themselves(
        frames in proptest::collection::vec(arb_frame(), 1..6),
        chunks in proptest::collection::vec(1usize..32, 1..8),
    ) {
        let (got, end) = read_all(FrameReader::new(Chunked::new(stream_of(&frames), chunks)));
        prop_assert!(end.is_ok());
        prop_assert_eq!(got, frames);
    }
}

/// The borrowed frames the server renders each round encode exactly as the frames a client
/// decodes: same variant index, same fields.
#[test]
fn borrowed_frames_encode_as_their_frames() {
    let order = alice_before_bob(38);
    let text = "X: Alice received before Y: Bob";
    let owned = Frame::Ack {
        text: text.into(),
        order: order.clone(),
    };
    let mut borrowed = vec![0xAA];
    let ack = FrameRef::Ack {
        text,
        order: &order,
    };
    encode_into(&ack, &mut borrowed).unwrap();
    // Appended after what was there, which it leaves alone.
    assert_eq!(borrowed[0], 0xAA);
    assert_eq!(borrowed[1..], encode(&owned).unwrap()[..]);
    let label = "Y";
    let connected = FrameRef::Connected { round: 7, label };
    let owned = Frame::Connected {
        round: 7,
        label: label.into(),
    };
    assert_same_bytes(&connected, &owned);
    assert_same_bytes(
        &FrameRef::Outcome(&outcome(), Cut::ALL),
        &Frame::Outcome(Box::new(outcome())),
    );
}

/// `borrowed` encodes to exactly the bytes of `owned`.
fn assert_same_bytes(borrowed: &FrameRef<'_>, owned: &Frame) {
    let mut bytes = Vec::new();
    encode_into(borrowed, &mut bytes).unwrap();
    assert_eq!(bytes, encode(owned).unwrap());
}

#[test]
fn borrowed_session_frames_encode_as_their_frames() {
    let scores = outcome().scores;
    let over = Frame::SessionOver {
        scores: scores.clone(),
    };
    let cut = Cut::ALL;
    assert_same_bytes(
        &FrameRef::SessionOver {
            scores: &scores,
            cut,
        },
        &over,
    );
    let why = OverReason::HostEnded;
    let over = FrameRef::Over {
        why,
        rounds: 3,
        scores: &scores,
        cut,
    };
    let owned = Frame::Over {
        why,
        rounds: 3,
        scores: scores.clone(),
    };
    assert_same_bytes(&over, &owned);
    let roster = Roster {
        round: 2,
        open: true,
        needed: 2,
        hosted: true,
        answer_micros: 10_000_000,
        players: vec![Member {
            name: "Ann".into(),
            rtt_micros: Some(1234),
            rtt_source: RttSource::Kernel,
            points: 1,
            from_round: 3,
        }],
        change: Change::Left {
            name: "Ben".into(),
            round: 2,
        },
    };
    let owned = Frame::Roster(Box::new(roster.clone()));
    assert_same_bytes(&FrameRef::Roster(&roster), &owned);
}

/// A big room's frames, encoded through a reader's window from the room's one copy, are
/// exactly the frames of the cut lists: the top places, then the reader's own line.
#[test]
fn a_window_encodes_as_the_cut_list_it_stands_for() {
    let result = crate::session::text::worst_result(30);
    let (lineup, queue) = crate::session::text::worst_room(30);
    for cut in [
        Cut::top_and(10, [Some(25), Some(3)]),
        Cut::top_and(10, [None, Some(29)]),
        Cut::top_and(0, [Some(7), None]),
        Cut::top_and(40, [Some(1), Some(2)]),
    ] {
        let cut_result = result.cut(cut);
        assert_same_bytes(
            &FrameRef::Outcome(&result, cut),
            &Frame::Outcome(Box::new(cut_result)),
        );
        assert_same_bytes(
            &FrameRef::Lineup(&lineup, cut),
            &Frame::Lineup(Box::new(lineup.cut(cut))),
        );
        assert_same_bytes(
            &FrameRef::Buzzes(&queue, cut),
            &Frame::Buzzes(Box::new(queue.cut(cut))),
        );
        let scores = &result.scores;
        assert_same_bytes(
            &FrameRef::SessionOver { scores, cut },
            &Frame::SessionOver {
                scores: window(scores, cut.top, cut.own[0]),
            },
        );
    }
    let cut = Cut::top_and(10, [Some(25), None]);
    let windowed = result.cut(cut);
    assert_eq!(windowed.order.len(), 11);
    assert_eq!(windowed.order[10], result.order[25]);
    assert_eq!(windowed.scores.len(), 10);
}

/// A frame that arrives whole (a WebSocket message) decodes only if its prefix says its length.
#[test]
fn a_whole_frame_decodes_only_with_its_own_length() {
    let answer = encode(&Frame::Answer).unwrap();
    assert_eq!(decode_whole(&answer).unwrap(), Frame::Answer);
    let mut longer = answer.clone();
    longer.push(0);
    assert!(matches!(
        decode_whole(&longer),
        Err(ReadError::Malformed(_))
    ));
    assert!(matches!(
        decode_whole(&answer[..3]),
        Err(ReadError::Truncated { .. })
    ));
    assert!(matches!(decode_whole(&[0, 0, 0, 0]), Err(ReadError::Empty)));
}

/// A frame too large to send leaves the buffer as it was.
#[test]
fn a_frame_over_the_limit_is_refused_and_appends_nothing() {
    let huge = Frame::Chat {
        line: "x".repeat(MAX_FRAME_LEN as usize),
    };
    let mut out = vec![1, 2, 3];
    assert!(encode_into(&huge, &mut out).is_err());
    assert_eq!(out, [1, 2, 3]);
}
