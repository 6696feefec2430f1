//! Soundness and completeness of the register checkers, by property tests.
//!
//! Histories are generated from a correct concurrent register: every operation takes effect
//! at a random instant inside its interval (its linearization point), reads return the state
//! at that instant, a cas whose comparison fails completes with `fail`, and some writes end
//! `info` (taking effect or not) or fail without effect. Such histories must be valid for
//! linearizability, sequential consistency, every session guarantee and no-thin-air. Then one
//! anomaly is appended (a stale read, a lost write, a read of a never-written value, a session
//! read going back) and the right checker must say `Invalid` with a witness naming it. With
//! deletes among the operations, histories must be valid for linearizability and sequential
//! consistency, and a read of a value its own session deleted must be caught.

use std::collections::BTreeMap;

use dialkv_consistency::history::{Event, EventType, History, HistoryBuilder, Workload};
use dialkv_consistency::level::{SessionGuarantee, SessionGuarantees};
use dialkv_consistency::register::SearchConfig;
use dialkv_consistency::verdict::Verdict;
use dialkv_consistency::{eventual, linearizable, sequential, session};
use proptest::prelude::*;
use serde_json::{json, Value};

/// One generated operation before it becomes events.
#[derive(Clone, Debug)]
struct Planned {
    process: u64,
    session: u64,
    f: &'static str,
    key: String,
    invoke_value: Value,
    ok_value: Value,
    completion: Option<EventType>,
    call: u64,
    ret: u64,
}

/// What the generator knows besides the history: per key, the final state and the ok writes
/// with their intervals.
struct Generated {
    history: History,
    events: Vec<Event>,
    state: BTreeMap<String, Option<i64>>,
    ok_writes: BTreeMap<String, Vec<(i64, u64, u64)>>,
    end: u64,
    next_process: u64,
}

/// Raw choices for one operation: (thread, key, kind, gap, lin offset, tail, outcome roll).
type Choice = (u8, u8, u8, u16, u16, u16, u8);

/// With `deletes`, a quarter of the operations are deletes (for the checkers that know them).
fn generate(threads: u8, keys: u8, choices: &[Choice], deletes: bool) -> Generated {
    let threads = threads.max(1) as usize;
    let mut clock = vec![0u64; threads];
    // A thread keeps its session for ever; its process id changes after an info completion.
    let mut process: Vec<u64> = (0..threads as u64).collect();
    let mut next_process = threads as u64;
    let mut next_value = 1i64;
    // (lin point, op index) so effects apply in lin-point order.
    let mut planned: Vec<Planned> = Vec::new();
    let mut lin: Vec<(u64, usize)> = Vec::new();
    let mut effect: Vec<bool> = Vec::new();
    for &(t, k, kind, gap, off, tail, roll) in choices {
        let th = t as usize % threads;
        // Distinct times: multiply by the thread count and add the thread.
        let call = (clock[th] + 1 + gap as u64) * threads as u64 + th as u64;
        let at = call + 1 + off as u64 * threads as u64;
        let ret = at + 1 + tail as u64 * threads as u64;
        clock[th] = ret / threads as u64 + 1;
        let key = format!("k{}", k % keys.max(1));
        let (f, invoke_value) = match kind % if deletes { 4 } else { 3 } {
            0 => ("read", Value::Null),
            3 => ("delete", Value::Null),
            1 => {
                next_value += 1;
                ("write", json!(next_value))
            }
            _ => {
                next_value += 1;
                ("cas", json!([null, next_value]))
            }
        };
        let completion = match (f, roll % 10) {
            ("read", 0) => Some(EventType::Info),
            ("write" | "delete", 0) => Some(EventType::Info),
            ("write" | "delete", 1) => None,
            ("write" | "delete", 2) => Some(EventType::Fail),
            _ => Some(EventType::Ok),
        };
        let applies = match completion {
            Some(EventType::Fail) => false,
            Some(EventType::Info) | None => roll % 2 == 0,
            _ => true,
        };
        lin.push((at, planned.len()));
        effect.push(applies);
        planned.push(Planned {
            process: process[th],
            session: th as u64,
            f,
            key,
            invoke_value,
            ok_value: Value::Null,
            completion,
            call,
            ret,
        });
        if !matches!(completion, Some(EventType::Ok) | Some(EventType::Fail)) {
            process[th] = next_process;
            next_process += 1;
        }
    }
    // Apply effects in lin-point order against the model.
    lin.sort();
    let mut state: BTreeMap<String, Option<i64>> = BTreeMap::new();
    let mut ok_writes: BTreeMap<String, Vec<(i64, u64, u64)>> = BTreeMap::new();
    for (_, i) in lin {
        let p = &mut planned[i];
        let cur = state.entry(p.key.clone()).or_insert(None);
        match p.f {
            "read" => p.ok_value = json!(*cur),
            "delete" => {
                if effect[i] {
                    *cur = None;
                }
            }
            "write" => {
                p.ok_value = p.invoke_value.clone();
                if effect[i] {
                    *cur = p.invoke_value.as_i64();
                    if p.completion == Some(EventType::Ok) {
                        ok_writes.entry(p.key.clone()).or_default().push((
                            p.invoke_value.as_i64().expect("int"),
                            p.call,
                            p.ret,
                        ));
                    }
                }
            }
            _ => {
                // cas [expected, new]: make it succeed against the current state.
                let new = p.invoke_value[1].clone();
                p.invoke_value = json!([*cur, new]);
                p.ok_value = p.invoke_value.clone();
                *cur = new.as_i64();
                ok_writes.entry(p.key.clone()).or_default().push((
                    new.as_i64().expect("int"),
                    p.call,
                    p.ret,
                ));
            }
        }
    }
    // Events in time order.
    let mut evs: Vec<(u64, usize, bool)> = Vec::new();
    for (i, p) in planned.iter().enumerate() {
        evs.push((p.call, i, true));
        if p.completion.is_some() {
            evs.push((p.ret, i, false));
        }
    }
    evs.sort();
    let mut b = HistoryBuilder::new();
    for (t, i, is_call) in evs {
        let p = &planned[i];
        let (ty, value) = if is_call {
            (EventType::Invoke, p.invoke_value.clone())
        } else {
            let ty = p.completion.expect("completion exists");
            let v = if ty == EventType::Ok {
                p.ok_value.clone()
            } else {
                p.invoke_value.clone()
            };
            (ty, v)
        };
        b.push(Event {
            index: 0,
            process: p.process,
            session: Some(p.session),
            event_type: ty,
            f: p.f.into(),
            key: Some(p.key.clone()),
            value,
            time_ns: t,
            node: None,
        });
    }
    let events = b.events().to_vec();
    let end = planned.iter().map(|p| p.ret).max().unwrap_or(0) + 10;
    Generated {
        history: b
            .build()
            .expect("the generator writes well-formed histories"),
        events,
        state,
        ok_writes,
        end,
        next_process,
    }
}

/// Appends one complete operation by `process` in `session` at `[t, t + 1]`; returns the
/// invoke index.
fn push_op(
    events: &mut Vec<Event>,
    process: u64,
    session: u64,
    f: &str,
    key: &str,
    v: Value,
    t: u64,
) -> u64 {
    let index = events.len() as u64;
    let inv = if f == "read" { Value::Null } else { v.clone() };
    for (ty, value, time) in [
        (EventType::Invoke, inv, t),
        (EventType::Ok, v.clone(), t + 1),
    ] {
        events.push(Event {
            index: events.len() as u64,
            process,
            session: Some(session),
            event_type: ty,
            f: f.into(),
            key: Some(key.into()),
            value,
            time_ns: time,
            node: None,
        });
    }
    index
}

fn choices() -> impl Strategy<Value = (u8, u8, Vec<Choice>)> {
    (
        1u8..6,
        1u8..4,
        proptest::collection::vec(
            (
                any::<u8>(),
                any::<u8>(),
                any::<u8>(),
                0u16..4,
                0u16..6,
                0u16..6,
                any::<u8>(),
            ),
            1..40,
        ),
    )
}

fn names(v: &Verdict, index: u64) -> bool {
    v.witness().iter().any(|w| w.index == index)
}

const CONFIG: SearchConfig = SearchConfig {
    max_steps: 200_000,
    shrink: true,
};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn correct_histories_pass((threads, keys, cs) in choices()) {
        let g = generate(threads, keys, &cs, false);
        let h = &g.history;
        prop_assert_eq!(linearizable::check_with(h, &CONFIG), Verdict::Valid, "{}", h.to_jsonl());
        prop_assert_eq!(sequential::check_with(h, &CONFIG), Verdict::Valid, "{}", h.to_jsonl());
        prop_assert_eq!(eventual::check_no_thin_air(h, Workload::Register), Verdict::Valid);
        for sg in SessionGuarantee::EVERY {
            let v = session::check_guarantee(h, sg, Workload::Register);
            prop_assert_eq!(v, Verdict::Valid, "{:?}\n{}", sg, h.to_jsonl());
        }
    }

    #[test]
    fn correct_histories_with_deletes_pass((threads, keys, cs) in choices()) {
        let g = generate(threads, keys, &cs, true);
        let h = &g.history;
        prop_assert_eq!(linearizable::check_with(h, &CONFIG), Verdict::Valid, "{}", h.to_jsonl());
        prop_assert_eq!(sequential::check_with(h, &CONFIG), Verdict::Valid, "{}", h.to_jsonl());
    }

    #[test]
    fn a_read_of_a_deleted_value_is_caught((threads, keys, cs) in choices()) {
        let g = generate(threads, keys, &cs, true);
        // A new session writes, deletes, and reads the deleted value back.
        let key = g.state.keys().next().cloned().expect("one key at least");
        let mut events = g.events.clone();
        let p = g.next_process;
        push_op(&mut events, p, 1000, "write", &key, json!(1_000_000), g.end);
        push_op(&mut events, p, 1000, "delete", &key, Value::Null, g.end + 10);
        let read = push_op(&mut events, p, 1000, "read", &key, json!(1_000_000), g.end + 20);
        let h = History::from_events(events).expect("well-formed");
        let lin = linearizable::check_with(&h, &CONFIG);
        prop_assert!(lin.is_invalid(), "{}", lin);
        prop_assert!(names(&lin, read), "{}", lin);
        prop_assert_eq!(lin.anomaly(), Some("stale-read"), "{}", lin);
        // Without real time to prune it, the sequential search may run out of budget on
        // such a history; it must never call it valid.
        let seq = sequential::check_with(&h, &CONFIG);
        prop_assert!(!seq.is_valid(), "{}", seq);
    }

    #[test]
    fn a_stale_read_is_caught((threads, keys, cs) in choices()) {
        let g = generate(threads, keys, &cs, false);
        // An ok write overwritten, in real time, by a later ok write.
        let stale = g.ok_writes.iter().find_map(|(k, ws)| {
            ws.iter().find(|(_, _, ret)| ws.iter().any(|(_, call2, _)| call2 > ret))
                .map(|(v, _, _)| (k.clone(), *v))
        });
        prop_assume!(stale.is_some());
        let (key, v) = stale.expect("assumed");
        let mut events = g.events.clone();
        let read = push_op(&mut events, g.next_process, 1000, "read", &key, json!(v), g.end);
        let h = History::from_events(events).expect("well-formed");
        let lin = linearizable::check_with(&h, &CONFIG);
        prop_assert!(lin.is_invalid(), "{}", lin);
        prop_assert!(names(&lin, read), "{}", lin);
        prop_assert_eq!(lin.anomaly(), Some("stale-read"));
        // A lone stale read by a new session is sequentially consistent.
        prop_assert_eq!(sequential::check_with(&h, &CONFIG), Verdict::Valid);
    }

    #[test]
    fn a_lost_write_is_caught((threads, keys, cs) in choices()) {
        let g = generate(threads, keys, &cs, false);
        // A new session writes a then b, and reads a back: b was lost.
        let key = g.state.keys().next().cloned().expect("one key at least");
        let mut events = g.events.clone();
        let p = g.next_process;
        push_op(&mut events, p, 1000, "write", &key, json!(1_000_000), g.end);
        push_op(&mut events, p, 1000, "write", &key, json!(1_000_001), g.end + 10);
        let read = push_op(&mut events, p, 1000, "read", &key, json!(1_000_000), g.end + 20);
        let h = History::from_events(events).expect("well-formed");
        for v in [linearizable::check_with(&h, &CONFIG), sequential::check_with(&h, &CONFIG)] {
            prop_assert!(v.is_invalid(), "{}", v);
            prop_assert!(names(&v, read), "{}", v);
        }
        let v = session::check_guarantee(&h, SessionGuarantee::ReadYourWrites, Workload::Register);
        prop_assert_eq!(v.anomaly(), Some("read-your-writes"));
    }

    #[test]
    fn a_read_of_a_never_written_value_is_caught((threads, keys, cs) in choices()) {
        let g = generate(threads, keys, &cs, false);
        let mut events = g.events.clone();
        let read = push_op(&mut events, g.next_process, 1000, "read", "k0", json!(-7), g.end);
        let h = History::from_events(events).expect("well-formed");
        for v in [linearizable::check_with(&h, &CONFIG), sequential::check_with(&h, &CONFIG)] {
            prop_assert_eq!(v.anomaly(), Some("read-of-unwritten-value"), "{}", v);
            prop_assert!(names(&v, read), "{}", v);
        }
        let v = eventual::check_no_thin_air(&h, Workload::Register);
        prop_assert_eq!(v.anomaly(), Some("thin-air-read"));
        prop_assert!(names(&v, read));
    }

    #[test]
    fn a_session_read_going_back_is_caught((threads, keys, cs) in choices()) {
        let g = generate(threads, keys, &cs, false);
        let current = g.state.iter().find_map(|(k, s)| s.map(|v| (k.clone(), v)));
        prop_assume!(current.is_some());
        let (key, v) = current.expect("assumed");
        let mut events = g.events.clone();
        let p = g.next_process;
        let first = push_op(&mut events, p, 1000, "read", &key, json!(v), g.end);
        let back = push_op(&mut events, p, 1000, "read", &key, Value::Null, g.end + 10);
        let h = History::from_events(events).expect("well-formed");
        let mr = session::check(&h, SessionGuarantees { monotonic_reads: true, ..SessionGuarantees::NONE }, Workload::Register);
        prop_assert_eq!(mr.anomaly(), Some("monotonic-reads"), "{}", mr);
        prop_assert!(names(&mr, first) && names(&mr, back), "{}", mr);
        for v in [linearizable::check_with(&h, &CONFIG), sequential::check_with(&h, &CONFIG)] {
            prop_assert!(v.is_invalid(), "{}", v);
            prop_assert!(names(&v, back), "{}", v);
        }
    }
}

#[test]
fn many_info_writes_end_within_the_budget() {
    let mut b = HistoryBuilder::new();
    let mut t = 0;
    for p in 0..60u64 {
        b.invoke(p, "write", "k", json!(p), t);
        b.info(p, "write", "k", json!(p), t + 1);
        t += 2;
    }
    for (i, v) in (0..60u64).chain([0]).enumerate() {
        let q = 1000 + i as u64;
        b.invoke(q, "read", "k", Value::Null, t);
        b.ok(q, "read", "k", json!(v), t + 1);
        t += 2;
    }
    let h = b.build().expect("well-formed");
    let config = SearchConfig {
        max_steps: 100_000,
        shrink: true,
    };
    let started = std::time::Instant::now();
    let v = linearizable::check_with(&h, &config);
    assert!(v.is_unknown(), "{v}");
    // Sequentially consistent: the readers are separate processes, so the second read of 0
    // may come right after the first; the search finds that order within the budget (a
    // configuration whose reads can no longer be served is abandoned at once).
    let v = sequential::check_with(&h, &config);
    assert!(v.is_valid(), "{v}");
    assert!(
        started.elapsed().as_secs() < 60,
        "the budget bounds the time"
    );
}
