//! Unit tests of the log: behaviour, recovery from torn/corrupt bytes, fault injection and a
//! model-based proptest.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use proptest::prelude::*;

use super::*;

fn opts_small() -> LogOptions {
    LogOptions {
        segment_bytes: 4096,
        segment_age: None,
        durability: Durability::Fsync,
        index_interval_bytes: 256,
    }
}

/// [`opts_small`] with segments of `bytes`.
fn opts_with_segments(bytes: u64) -> LogOptions {
    LogOptions {
        segment_bytes: bytes,
        ..opts_small()
    }
}

fn payload(i: u64) -> Vec<u8> {
    format!("record-{i}-{}", "x".repeat((i % 37) as usize)).into_bytes()
}

fn ts_of(i: u64) -> u64 {
    // Non-monotonic on purpose.
    1000 + (i * 7919) % 500
}

fn fill(log: &Log, from: u64, n: u64) {
    for i in from..from + n {
        assert_eq!(
            log.append_blocking((i % 5) as u8, ts_of(i), payload(i))
                .unwrap(),
            i
        );
    }
}

fn check_all(log: &Log, from: u64, to: u64) {
    for i in from..to {
        let r = log
            .read(i)
            .unwrap()
            .unwrap_or_else(|| panic!("offset {i} missing"));
        assert_eq!(
            (r.offset, r.kind, r.timestamp_ms),
            (i, (i % 5) as u8, ts_of(i))
        );
        assert_eq!(r.payload, payload(i));
    }
    assert!(log.next_offset() >= to);
    let scanned: Vec<OwnedRecord> = log
        .scan(from)
        .take((to - from) as usize)
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(scanned.len() as u64, to - from);
    for (k, r) in scanned.iter().enumerate() {
        assert_eq!(r.offset, from + k as u64);
        assert_eq!(r.payload, payload(r.offset));
    }
}

fn seg_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

#[test]
fn append_read_scan_roll_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (log, rep) = Log::open(dir.path(), opts_small()).unwrap();
    assert!(rep.created_segment);
    assert_eq!((log.start_offset(), log.next_offset()), (0, 0));
    assert_eq!(log.read(0).unwrap(), None);
    fill(&log, 0, 300);
    assert!(log.segments().len() > 3, "segments should roll by size");
    assert!(log.segments().iter().rev().skip(1).all(|s| s.sealed));
    check_all(&log, 0, 300);
    assert_eq!(log.read(300).unwrap(), None);
    log.roll().unwrap();
    log.roll().unwrap(); // empty active: no-op
    let first = log
        .append_batch_blocking(vec![(9, 1, b"a".to_vec()), (9, 2, b"b".to_vec())])
        .unwrap();
    assert_eq!(first, 300);
    assert_eq!(
        log.read_with(301, |k, t, p| (k, t, p.to_vec())).unwrap(),
        Some((9, 2, b"b".to_vec()))
    );
    let segs = log.segments();
    drop(log);
    let (log, rep) = Log::open(dir.path(), opts_small()).unwrap();
    assert_eq!(rep.truncated_bytes, 0);
    assert_eq!(rep.rebuilt_indexes, 0);
    assert_eq!(log.segments(), segs);
    assert_eq!(log.next_offset(), 302);
    check_all(&log, 0, 300);
    assert_eq!(log.append_blocking(0, 0, vec![]).unwrap(), 302);
    let v = verify_dir(dir.path()).unwrap();
    assert!(v.is_clean());
    assert_eq!((v.records, v.next_offset), (303, 303));
    assert!(v.to_string().ends_with(": OK"), "{v}");
}

#[test]
fn handles_are_send_and_sync() {
    fn check<T: Send + Sync + 'static>() {}
    check::<Log>();
    check::<LogError>();
    check::<OwnedRecord>();
    fn iter_is_send<'a>(l: &'a Log) -> impl Send + 'a {
        l.scan(0)
    }
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), opts_small()).unwrap();
    let _ = iter_is_send(&log);
}

#[test]
fn reopen_is_locked_while_open() {
    let dir = tempfile::tempdir().unwrap();
    let (_log, _) = Log::open(dir.path(), opts_small()).unwrap();
    assert!(matches!(
        Log::open(dir.path(), opts_small()),
        Err(LogError::Locked { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_async_appends_are_dense_and_durable() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), opts_small()).unwrap();
    let mut tasks = Vec::new();
    for t in 0..32u64 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for i in 0..40u64 {
                let p = format!("{t}:{i}").into_bytes();
                let o = if i % 5 == 0 {
                    log.append_batch(vec![(1, t, p.clone()), (2, t, p.clone())])
                        .await
                        .unwrap()
                } else {
                    log.append(1, t, p.clone()).await.unwrap()
                };
                got.push((o, p));
            }
            got
        }));
    }
    let all = joined(tasks).await;
    let n = log.next_offset();
    assert_eq!(n, 32 * 40 + 32 * 8);
    for (o, p) in &all {
        assert_eq!(&log.read(*o).unwrap().unwrap().payload, p);
    }
    // batches are contiguous
    for (o, p) in &all {
        let next = log.read(o + 1).unwrap();
        if let Some(r) = next {
            if r.kind == 2 {
                assert_eq!(&r.payload, p);
            }
        }
    }
    let offsets: std::collections::BTreeSet<u64> = log.scan(0).map(|r| r.unwrap().offset).collect();
    assert_eq!(offsets.len() as u64, n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_sees_new_records() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), opts_small()).unwrap();
    let mut rx = log.subscribe();
    assert_eq!(*rx.borrow(), 0);
    let l2 = log.clone();
    let waiter = tokio::spawn(async move { *rx.wait_for(|&n| n > 2).await.unwrap() });
    for i in 0..3 {
        log.append(0, i, vec![]).await.unwrap();
    }
    assert_eq!(waiter.await.unwrap(), 3);
    l2.checkpoint_and_truncate(3, b"s").unwrap();
    assert_eq!(l2.read_checkpoint().unwrap(), Some((3, b"s".to_vec())));
}

#[test]
fn offset_and_timestamp_lookup() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), opts_small()).unwrap();
    fill(&log, 0, 500);
    let brute = |ts: u64| (0..500u64).find(|&i| ts_of(i) >= ts);
    for ts in [0, 999, 1000, 1001, 1250, 1498, 1499, 1500, 5000] {
        assert_eq!(log.offset_for_timestamp(ts).unwrap(), brute(ts), "ts {ts}");
    }
    for ts in (990..1510).step_by(3) {
        assert_eq!(log.offset_for_timestamp(ts).unwrap(), brute(ts), "ts {ts}");
    }
    // Same answers after reopen (persisted indexes) and with the active segment only.
    drop(log);
    let (log, _) = Log::open(dir.path(), opts_small()).unwrap();
    for ts in (990..1510).step_by(7) {
        assert_eq!(log.offset_for_timestamp(ts).unwrap(), brute(ts), "ts {ts}");
    }
    let dir2 = tempfile::tempdir().unwrap();
    let (l2, _) = Log::open(
        dir2.path(),
        LogOptions {
            index_interval_bytes: 64,
            ..LogOptions::default()
        },
    )
    .unwrap();
    fill(&l2, 0, 500);
    assert_eq!(l2.segments().len(), 1);
    for ts in (990..1510).step_by(5) {
        assert_eq!(l2.offset_for_timestamp(ts).unwrap(), brute(ts), "ts {ts}");
    }
}

#[test]
fn truncate_front_drops_whole_segments() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), opts_small()).unwrap();
    fill(&log, 0, 300);
    let segs = log.segments();
    let cut = segs[2].base_offset + 1; // inside segment 2: it must stay
    log.truncate_front(cut).unwrap();
    assert_eq!(log.start_offset(), segs[2].base_offset);
    assert_eq!(log.read(segs[2].base_offset - 1).unwrap(), None);
    check_all(&log, segs[2].base_offset, 300);
    assert!(!segs[0].path.exists() && !segs[1].path.exists());
    log.truncate_front(u64::MAX).unwrap();
    let last = log.segments();
    assert_eq!(last.len(), 1, "only the active segment remains");
    assert_eq!(log.start_offset(), last[0].base_offset);
    assert_eq!(log.next_offset(), 300);
    drop(log);
    let (log, _) = Log::open(dir.path(), opts_small()).unwrap();
    assert_eq!(log.start_offset(), last[0].base_offset);
    assert_eq!(log.append_blocking(0, 0, vec![1]).unwrap(), 300);
}

#[test]
fn hollowed_segments_keep_their_offsets_and_read_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), opts_small()).unwrap();
    fill(&log, 0, 300);
    let segs = log.segments();
    assert!(segs.len() > 4);
    let (a, b) = (&segs[1], &segs[2]);
    let bytes_before = log.disk_bytes();
    assert_eq!(
        log.hollow(a.base_offset).unwrap(),
        a.next_offset - a.base_offset
    );
    assert_eq!(
        log.hollow(b.base_offset).unwrap(),
        b.next_offset - b.base_offset
    );
    // Already hollow, not a segment base, the active segment: nothing to do.
    assert_eq!(log.hollow(a.base_offset).unwrap(), 0);
    assert_eq!(log.hollow(a.base_offset + 1).unwrap(), 0);
    assert_eq!(log.hollow(segs.last().unwrap().base_offset).unwrap(), 0);
    let gone = a.base_offset..b.next_offset;
    let check = |log: &Log| {
        assert_eq!((log.start_offset(), log.next_offset()), (0, 300));
        for i in 0..300 {
            let r = log.read(i).unwrap();
            assert_eq!(r.is_none(), gone.contains(&i), "offset {i}");
        }
        let scanned: Vec<u64> = log.scan(0).map(|r| r.unwrap().offset).collect();
        let want: Vec<u64> = (0..300).filter(|i| !gone.contains(i)).collect();
        assert_eq!(scanned, want);
        // A scan starting inside the hole resumes after it.
        let from_hole: Vec<u64> = log
            .scan(gone.start + 1)
            .map(|r| r.unwrap().offset)
            .collect();
        assert_eq!(from_hole.first(), Some(&gone.end));
        let want_ts = want.iter().copied().find(|&i| ts_of(i) >= 1200);
        assert_eq!(log.offset_for_timestamp(1200).unwrap(), want_ts);
        let segs = log.segments();
        for w in segs.windows(2) {
            assert_eq!(w[0].next_offset, w[1].base_offset);
        }
        assert_eq!(segs.iter().filter(|s| s.hollow).count(), 2);
    };
    check(&log);
    assert!(log.disk_bytes() < bytes_before);
    for base in [a.base_offset, b.base_offset] {
        assert!(!dir.path().join(segment::idx_name(base)).exists());
        assert!(!dir.path().join(segment::tix_name(base)).exists());
    }
    drop(log);
    let v = verify_dir(dir.path()).unwrap();
    assert!(v.is_clean(), "{v}");
    assert_eq!((v.hollow_segments, v.next_offset), (2, 300));
    // Index files a crash left behind after the rename are removed at open.
    std::fs::write(dir.path().join(segment::idx_name(a.base_offset)), b"stale").unwrap();
    let (log, _) = Log::open(dir.path(), opts_small()).unwrap();
    assert!(!dir.path().join(segment::idx_name(a.base_offset)).exists());
    check(&log);
    assert_eq!(log.append_blocking(0, 0, vec![1]).unwrap(), 300);
    // Truncation and age retention drop hollow segments like any other.
    log.truncate_front(b.next_offset).unwrap();
    assert_eq!(log.start_offset(), b.next_offset);
    assert!(!a.path.exists() && !b.path.exists());
}

#[test]
fn a_hollow_segment_must_be_sealed_and_flags_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), opts_small()).unwrap();
    fill(&log, 0, 300);
    let seg = log.segments()[1].clone();
    log.hollow(seg.base_offset).unwrap();
    drop(log);
    let good = std::fs::read(&seg.path).unwrap();
    assert_eq!(good.len() as u64, SEGMENT_HEADER_LEN + TRAILER_LEN);
    // The seal word lies outside the header CRC: a hollow segment without it is corrupt.
    let mut unsealed = good.clone();
    unsealed[segment::HDR_OFF_SEAL..segment::HDR_OFF_SEAL + 8].fill(0);
    std::fs::write(&seg.path, &unsealed).unwrap();
    let e = Log::open(dir.path(), opts_small())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("hollow segment is not sealed"), "{e}");
    assert!(!verify_dir(dir.path()).unwrap().is_clean());
    // A flag this build does not know (CRC fixed up, so only the flag is wrong).
    let mut flagged = good.clone();
    flagged[segment::HDR_OFF_FLAGS] = 5;
    let crc = crc32fast::hash(&flagged[..segment::HDR_OFF_CRC]);
    flagged[segment::HDR_OFF_CRC..segment::HDR_OFF_CRC + 4].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&seg.path, &flagged).unwrap();
    let e = Log::open(dir.path(), opts_small())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("unknown segment flags"), "{e}");
    std::fs::write(&seg.path, &good).unwrap();
    let (log, _) = Log::open(dir.path(), opts_small()).unwrap();
    assert_eq!(log.read(seg.base_offset).unwrap(), None);
    assert!(log.read(seg.next_offset).unwrap().is_some());
}

#[test]
fn retention_by_age_and_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), opts_small()).unwrap();
    for i in 0..200u64 {
        log.append_blocking(0, i * 10, vec![0u8; 100]).unwrap();
    }
    let segs = log.segments();
    assert!(segs.len() > 4);
    // Age: drop segments whose newest record is older than 2000 - 1000 = 1000.
    let dropped = log.enforce_retention(2000, Some(1000), None).unwrap();
    let expect: u64 = segs
        .iter()
        .take_while(|s| s.sealed && s.max_timestamp_ms.unwrap() < 1000)
        .map(|s| s.next_offset - s.base_offset)
        .sum();
    assert!(expect > 0);
    assert_eq!(dropped, expect);
    assert_eq!(log.start_offset(), expect);
    // Bytes.
    let dropped2 = log.enforce_retention(2000, None, Some(3 * 4096)).unwrap();
    assert!(dropped2 > 0);
    assert!(log.disk_bytes() <= 3 * 4096 + 4096);
    assert!(log.enforce_retention(u64::MAX, Some(0), Some(0)).unwrap() > 0);
    assert_eq!(log.segments().len(), 1);
    assert_eq!(log.next_offset(), 200);
}

#[test]
fn checkpoint_roundtrip_and_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), opts_small()).unwrap();
    assert_eq!(log.read_checkpoint().unwrap(), None);
    log.write_checkpoint(5, b"state-1").unwrap();
    log.write_checkpoint(9, b"state-2").unwrap();
    assert_eq!(
        log.read_checkpoint().unwrap(),
        Some((9, b"state-2".to_vec()))
    );
    drop(log);
    let (log, _) = Log::open(dir.path(), opts_small()).unwrap();
    assert_eq!(
        log.read_checkpoint().unwrap(),
        Some((9, b"state-2".to_vec()))
    );
    let p = dir.path().join(CHECKPOINT_FILE);
    let mut b = std::fs::read(&p).unwrap();
    let n = b.len();
    b[n - 6] ^= 1;
    std::fs::write(&p, &b).unwrap();
    assert!(matches!(
        log.read_checkpoint(),
        Err(LogError::Corrupt { .. })
    ));
    assert!(!verify_dir(dir.path()).unwrap().is_clean());
}

#[test]
fn clear_keeps_offsets_growing() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), opts_small()).unwrap();
    fill(&log, 0, 100);
    log.write_checkpoint(50, b"x").unwrap();
    log.clear().unwrap();
    assert_eq!((log.start_offset(), log.next_offset()), (100, 100));
    assert_eq!(log.read(5).unwrap(), None);
    assert_eq!(log.read_checkpoint().unwrap(), None);
    assert_eq!(seg_files(dir.path()).len(), 1);
    assert_eq!(log.append_blocking(0, 0, vec![]).unwrap(), 100);
    drop(log);
    let (log, _) = Log::open(dir.path(), opts_small()).unwrap();
    assert_eq!((log.start_offset(), log.next_offset()), (100, 101));
}

/// Writes `n` records into a sealed segment plus `tail` records into the active one, closes
/// the log and returns the active segment's path, its bytes and the record end positions.
fn build_tail(dir: &Path, n_sealed: u64, tail: u64) -> (PathBuf, Vec<u8>, Vec<u64>) {
    let (log, _) = Log::open(dir, LogOptions::default()).unwrap();
    fill(&log, 0, n_sealed);
    log.roll().unwrap();
    let mut ends = vec![SEGMENT_HEADER_LEN];
    for i in n_sealed..n_sealed + tail {
        log.append_blocking((i % 5) as u8, ts_of(i), payload(i))
            .unwrap();
        ends.push(log.segments().last().unwrap().bytes);
    }
    drop(log);
    let p = seg_files(dir).pop().unwrap();
    let mut bytes = std::fs::read(&p).unwrap();
    // Past the records the writer has allocated zeros ahead; the cases cut and flip the data.
    assert!(bytes.len() as u64 > *ends.last().unwrap());
    assert!(bytes[*ends.last().unwrap() as usize..]
        .iter()
        .all(|&b| b == 0));
    bytes.truncate(*ends.last().unwrap() as usize);
    (p, bytes, ends)
}

#[test]
fn torn_tail_cut_at_every_byte() {
    let dir = tempfile::tempdir().unwrap();
    let (active, bytes, ends) = build_tail(dir.path(), 10, 6);
    let from = ends[ends.len() - 4]; // the last three records
    for cut in from..=bytes.len() as u64 {
        std::fs::write(&active, &bytes[..cut as usize]).unwrap();
        let (log, rep) = Log::open(dir.path(), LogOptions::default()).unwrap();
        let good = ends.iter().rposition(|&e| e <= cut).unwrap() as u64;
        let good_end = ends[good as usize];
        assert_eq!(log.next_offset(), 10 + good, "cut {cut}");
        // Zeros at the end of a partial frame look like space allocated ahead: not reported
        // and not cut, but overwritten by the next append.
        let torn_end = bytes[good_end as usize..cut as usize]
            .iter()
            .rposition(|&b| b != 0)
            .map_or(good_end, |i| good_end + i as u64 + 1);
        assert_eq!(rep.truncated_bytes, torn_end - good_end, "cut {cut}");
        let len = std::fs::metadata(&active).unwrap().len();
        if torn_end == good_end {
            assert_eq!(rep.truncated_at, None);
            assert_eq!(len, cut);
        } else {
            assert_eq!(rep.truncated_at, Some((active.clone(), good_end)));
            assert_eq!(len, good_end);
        }
        check_all(&log, 0, 10 + good);
    }
}

#[test]
fn zeros_allocated_ahead_are_kept_across_reopen_and_not_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), LogOptions::default()).unwrap();
    fill(&log, 0, 30);
    let end = log.segments().last().unwrap().bytes;
    drop(log);
    let active = seg_files(dir.path()).pop().unwrap();
    let len = std::fs::metadata(&active).unwrap().len();
    assert!(
        len >= end + (32 << 10),
        "zeros allocated ahead: {len} vs {end}"
    );
    assert!(std::fs::read(&active).unwrap()[end as usize..]
        .iter()
        .all(|&b| b == 0));
    let v = verify_dir(dir.path()).unwrap();
    assert!(v.is_clean() && v.torn_tail_bytes == 0, "{v}");
    let (log, rep) = Log::open(dir.path(), LogOptions::default()).unwrap();
    assert_eq!((rep.truncated_bytes, rep.truncated_at.clone()), (0, None));
    assert_eq!(std::fs::metadata(&active).unwrap().len(), len);
    // Appends overwrite the zeros instead of growing the file.
    fill(&log, 30, 10);
    assert_eq!(std::fs::metadata(&active).unwrap().len(), len);
    drop(log);
    let (log, rep) = Log::open(dir.path(), LogOptions::default()).unwrap();
    assert_eq!(rep.truncated_bytes, 0);
    check_all(&log, 0, 40);
}

/// A batch of 128 KiB or more appends without zeros after it; the next small batch brings
/// them back.
#[test]
fn big_batches_append_without_zeros_ahead() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), LogOptions::default()).unwrap();
    fill(&log, 0, 30);
    let active = seg_files(dir.path()).pop().unwrap();
    let big: Vec<_> = (30..230).map(|i| (1, ts_of(i), vec![7u8; 1024])).collect();
    assert_eq!(log.append_batch_blocking(big).unwrap(), 30);
    let end = log.segments().last().unwrap().bytes;
    assert!(end > 200 << 10, "{end}");
    // Zeros claimed after the batch would be written by the zeroer thread: wait for them.
    log.inner.writer.lock().wait_for_zeros();
    assert_eq!(std::fs::metadata(&active).unwrap().len(), end);
    fill(&log, 230, 1);
    let end = log.segments().last().unwrap().bytes;
    drop(log);
    let len = std::fs::metadata(&active).unwrap().len();
    assert!(len >= end + (64 << 10), "zeros ahead again: {len} vs {end}");
    let (log, rep) = Log::open(dir.path(), LogOptions::default()).unwrap();
    assert_eq!(rep.truncated_bytes, 0);
    for i in 30..230 {
        assert_eq!(log.read(i).unwrap().unwrap().payload, vec![7u8; 1024]);
    }
    check_all(&log, 0, 30);
    check_all(&log, 230, 231);
}

#[test]
fn torn_frame_inside_the_zeros_is_cut_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), LogOptions::default()).unwrap();
    fill(&log, 0, 12);
    let end = log.segments().last().unwrap().bytes;
    drop(log);
    let active = seg_files(dir.path()).pop().unwrap();
    // A frame whose first 9 bytes reached the disk before a crash, zeros after it.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&active)
        .unwrap();
    std::os::unix::fs::FileExt::write_at(&f, &[0xAB; 9], end).unwrap();
    drop(f);
    let (log, rep) = Log::open(dir.path(), LogOptions::default()).unwrap();
    assert_eq!(rep.truncated_bytes, 9);
    assert_eq!(rep.truncated_at, Some((active.clone(), end)));
    assert_eq!(std::fs::metadata(&active).unwrap().len(), end);
    check_all(&log, 0, 12);
    fill(&log, 12, 3);
    check_all(&log, 0, 15);
}

#[test]
fn sealed_segments_end_at_their_trailer() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), opts_small()).unwrap();
    fill(&log, 0, 200);
    let segs = log.segments();
    assert!(segs.len() > 2);
    for s in segs.iter().filter(|s| s.sealed) {
        let bytes = std::fs::read(&s.path).unwrap();
        let t = &bytes[bytes.len() - segment::TRAILER_LEN as usize..];
        let t =
            segment::parse_trailer(&s.path, t, bytes.len() as u64, s.base_offset, false).unwrap();
        assert_eq!(t.data_end + segment::TRAILER_LEN, bytes.len() as u64);
    }
    drop(log);
    assert!(verify_dir(dir.path()).unwrap().is_clean());
    let (log, _) = Log::open(dir.path(), opts_small()).unwrap();
    check_all(&log, 0, 200);
}

#[test]
fn flipped_bits_in_tail_truncate_at_bad_record() {
    let dir = tempfile::tempdir().unwrap();
    let (active, bytes, ends) = build_tail(dir.path(), 10, 8);
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..60 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let pos = SEGMENT_HEADER_LEN + rng % (bytes.len() as u64 - SEGMENT_HEADER_LEN);
        let mut b = bytes.clone();
        b[pos as usize] ^= 1 << (rng >> 60 & 7);
        std::fs::write(&active, &b).unwrap();
        let (log, rep) = Log::open(dir.path(), LogOptions::default()).unwrap();
        let bad = ends.iter().rposition(|&e| e <= pos).unwrap();
        assert_eq!(log.next_offset(), 10 + bad as u64, "flip at {pos}");
        assert_eq!(rep.truncated_at, Some((active.clone(), ends[bad])));
        assert_eq!(rep.truncated_bytes, bytes.len() as u64 - ends[bad]);
        check_all(&log, 0, 10 + bad as u64);
    }
}

#[test]
fn flipped_bit_in_sealed_segment_is_an_error_naming_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), opts_small()).unwrap();
    fill(&log, 0, 300);
    let seg = log.segments()[1].clone();
    assert!(seg.sealed);
    drop(log);
    let mut b = std::fs::read(&seg.path).unwrap();
    let pos = b.len() / 2;
    b[pos] ^= 0x04;
    std::fs::write(&seg.path, &b).unwrap();
    // Open trusts sealed segments (no scan) ...
    let (log, _) = Log::open(dir.path(), opts_small()).unwrap();
    // ... but reading the damaged record fails with the file and the frame's position.
    let errs: Vec<LogError> = (seg.base_offset..seg.next_offset)
        .filter_map(|o| log.read(o).err())
        .collect();
    assert_eq!(errs.len(), 1, "exactly the damaged record fails");
    match &errs[0] {
        LogError::Corrupt { path, offset, .. } => {
            assert_eq!(path, &seg.path);
            assert!(
                *offset <= pos as u64 && pos as u64 - *offset < 200,
                "offset {offset} vs flip {pos}"
            );
            assert!(errs[0]
                .to_string()
                .contains(&seg.path.display().to_string()));
        }
        e => panic!("unexpected {e:?}"),
    }
    assert!(log.scan(0).any(|r| r.is_err()));
    drop(log);
    let v = verify_dir(dir.path()).unwrap();
    assert_eq!(v.problems.len(), 1, "{:?}", v.problems);
    assert!(v.problems[0].contains(&seg.path.display().to_string()));
    // With its index gone, open must rebuild by scanning and refuses the corrupt segment.
    std::fs::remove_file(dir.path().join(segment::idx_name(seg.base_offset))).unwrap();
    match Log::open(dir.path(), opts_small()) {
        Err(LogError::Corrupt { path, .. }) => assert_eq!(path, seg.path),
        other => panic!("expected corruption error, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn missing_or_damaged_index_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), opts_small()).unwrap();
    fill(&log, 0, 200);
    let segs = log.segments();
    drop(log);
    let idx = dir.path().join(segment::idx_name(segs[0].base_offset));
    let tix = dir.path().join(segment::tix_name(segs[1].base_offset));
    let orig = std::fs::read(&idx).unwrap();
    std::fs::remove_file(&idx).unwrap();
    let mut t = std::fs::read(&tix).unwrap();
    let n = t.len();
    t[n - 1] ^= 0xFF;
    std::fs::write(&tix, &t).unwrap();
    std::fs::write(dir.path().join("00000000000000000000.idx.tmp"), b"junk").unwrap();
    assert_eq!(verify_dir(dir.path()).unwrap().missing_indexes, 1);
    let (log, rep) = Log::open(dir.path(), opts_small()).unwrap();
    assert_eq!(rep.rebuilt_indexes, 2);
    assert_eq!(rep.removed_temp_files, 1);
    assert_eq!(
        std::fs::read(&idx).unwrap(),
        orig,
        "rebuild is byte-identical"
    );
    check_all(&log, 0, 200);
    drop(log);
    let (_log, rep) = Log::open(dir.path(), opts_small()).unwrap();
    assert_eq!(rep.rebuilt_indexes, 0);
}

#[test]
fn crash_during_roll_is_finished_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), LogOptions::default()).unwrap();
    fill(&log, 0, 20);
    log.roll().unwrap();
    drop(log);
    // Simulate a crash after the seal but before the new segment was created.
    let segs = seg_files(dir.path());
    std::fs::remove_file(segs.last().unwrap()).unwrap();
    let (log, rep) = Log::open(dir.path(), LogOptions::default()).unwrap();
    assert!(rep.created_segment);
    assert_eq!(log.next_offset(), 20);
    assert_eq!(log.append_blocking(0, 0, vec![]).unwrap(), 20);
    drop(log);
    // Simulate a crash after the trailer was written but before the seal word: the trailer
    // is garbage at the end of the active segment and gets cut.
    let (log, _) = Log::open(dir.path(), LogOptions::default()).unwrap();
    fill(&log, 21, 5);
    let end = log.segments().last().unwrap().bytes;
    drop(log);
    let active = seg_files(dir.path()).pop().unwrap();
    let mut b = std::fs::read(&active).unwrap();
    b.truncate(end as usize);
    let len = b.len() as u64;
    b.extend_from_slice(&segment::encode_trailer(&segment::Trailer {
        base: 20,
        next: 26,
        data_end: len,
        min_ts: 0,
        max_ts: 0,
    }));
    std::fs::write(&active, &b).unwrap();
    let (log, rep) = Log::open(dir.path(), LogOptions::default()).unwrap();
    assert_eq!(rep.truncated_bytes, segment::TRAILER_LEN);
    assert_eq!(log.next_offset(), 26);
}

#[test]
fn interrupted_seal_word_is_reset() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), LogOptions::default()).unwrap();
    fill(&log, 0, 10);
    let end = log.segments().last().unwrap().bytes;
    drop(log);
    let p = seg_files(dir.path()).pop().unwrap();
    let mut b = std::fs::read(&p).unwrap();
    b.truncate(end as usize);
    let sealed = segment::SEAL_WORD_SEALED.to_le_bytes();
    b[segment::HDR_OFF_SEAL..segment::HDR_OFF_SEAL + 3].copy_from_slice(&sealed[..3]);
    b.extend_from_slice(&[0xEE; 20]); // part of a trailer
    std::fs::write(&p, &b).unwrap();
    let (log, rep) = Log::open(dir.path(), LogOptions::default()).unwrap();
    assert_eq!(rep.truncated_bytes, 20);
    check_all(&log, 0, 10);
    fill(&log, 10, 5);
    log.roll().unwrap();
    drop(log);
    let (log, _) = Log::open(dir.path(), LogOptions::default()).unwrap();
    check_all(&log, 0, 15);
    drop(log);
    // A seal word that is not a prefix pattern of the sealed value is corruption.
    let mut b = std::fs::read(&p).unwrap();
    b[segment::HDR_OFF_SEAL] = 0x99;
    std::fs::write(&p, &b).unwrap();
    assert!(matches!(
        Log::open(dir.path(), LogOptions::default()),
        Err(LogError::Corrupt { offset, .. }) if offset == segment::HDR_OFF_SEAL as u64
    ));
}

#[test]
fn unsealed_segment_in_the_middle_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), opts_small()).unwrap();
    fill(&log, 0, 300);
    let seg = log.segments()[1].clone();
    assert!(seg.sealed);
    drop(log);
    let mut b = std::fs::read(&seg.path).unwrap();
    b[segment::HDR_OFF_SEAL..segment::HDR_OFF_SEAL + 8].copy_from_slice(&[0; 8]);
    std::fs::write(&seg.path, &b).unwrap();
    match Log::open(dir.path(), opts_small()) {
        Err(LogError::Corrupt { path, offset, .. }) => {
            assert_eq!(path, seg.path);
            assert_eq!(offset, segment::HDR_OFF_SEAL as u64);
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
    // A missing middle segment is a gap.
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), opts_small()).unwrap();
    fill(&log, 0, 300);
    let seg = log.segments()[1].clone();
    assert!(seg.sealed);
    drop(log);
    std::fs::remove_file(&seg.path).unwrap();
    assert!(matches!(
        Log::open(dir.path(), opts_small()),
        Err(LogError::Corrupt { .. })
    ));
}

#[test]
fn unknown_versions_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), opts_small()).unwrap();
    fill(&log, 0, 3);
    drop(log);
    let p = seg_files(dir.path()).pop().unwrap();
    let mut b = std::fs::read(&p).unwrap();
    b[segment::HDR_OFF_VERSION] = 2;
    let crc = crc32fast::hash(&b[..segment::HDR_OFF_CRC]);
    b[segment::HDR_OFF_CRC..segment::HDR_OFF_CRC + 4].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&p, &b).unwrap();
    assert!(matches!(
        Log::open(dir.path(), opts_small()),
        Err(LogError::UnsupportedVersion { found: 2, .. })
    ));
}

// ---------------------------------------------------------------------------------------
// Fault injection

#[derive(Default)]
struct Plan {
    /// Faults apply only to files whose path contains this (all files if `None`).
    target: Option<&'static str>,
    /// Bytes that may still be written before writes fail with ENOSPC (after a partial write);
    /// all-zero writes (zeros ahead) are exempt.
    write_budget: Option<u64>,
    fail_sync: bool,
    fail_set_len: bool,
    /// `start_writeback` waits while this is set, after setting `held`.
    hold_writeback: bool,
    held: bool,
    /// Every fdatasync of a targeted file takes at least this long (a slow disk).
    sync_delay: Duration,
    /// Every all-zero write of a targeted file takes at least this long (zeros ahead).
    zero_delay: Duration,
    /// fdatasyncs running now, and the most that ever ran at once (all files).
    syncing: usize,
    max_syncing: usize,
    syncs: u64,
    /// Per file: the end of the data (non-zero) writes, and that end as of the last fdatasync.
    written: std::collections::HashMap<PathBuf, (u64, u64)>,
    /// `drop_cached` calls: file, start, length, and the file's synced end at the time.
    dropped: Vec<(PathBuf, u64, u64, u64)>,
    /// `sync_filesystem` is passed to the real file (it is `Unsupported` otherwise).
    syncfs: bool,
    /// `sync_filesystem` fails with EIO.
    fail_syncfs: bool,
    /// `check_written` of a targeted file fails with EIO (its data was lost in a `syncfs`).
    fail_check_written: bool,
    syncfs_calls: u64,
}

#[derive(Clone, Default)]
struct FaultIo(Arc<Mutex<Plan>>);

struct FaultFile {
    f: Arc<dyn SegmentFile>,
    plan: Arc<Mutex<Plan>>,
    path: PathBuf,
}

impl SegmentIo for FaultIo {
    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn SegmentFile>> {
        Ok(Arc::new(FaultFile {
            f: StdIo.open(path, create)?,
            plan: self.0.clone(),
            path: path.to_path_buf(),
        }))
    }
}

impl FaultFile {
    /// The plan, if it applies to this file.
    fn plan(&self) -> Option<parking_lot::MutexGuard<'_, Plan>> {
        let p = self.plan.lock();
        let hit = p
            .target
            .is_none_or(|t| self.path.to_string_lossy().contains(t));
        hit.then_some(p)
    }
}

impl SegmentFile for FaultFile {
    fn write_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        let Some(mut p) = self.plan() else {
            return self.f.write_at(buf, pos);
        };
        // Zeros ahead are written on the zeroer thread, at times a test does not control, and
        // failing them only costs speed: they neither spend nor hit the budget, so an ENOSPC
        // lands on the data, trailer or index write the test aims at.
        if buf.iter().all(|&b| b == 0) {
            let delay = p.zero_delay;
            drop(p);
            std::thread::sleep(delay);
            return self.f.write_at(buf, pos);
        }
        let end = p.written.entry(self.path.clone()).or_default();
        end.0 = end.0.max(pos + buf.len() as u64);
        if let Some(budget) = p.write_budget.as_mut() {
            if (buf.len() as u64) > *budget {
                let n = *budget as usize;
                *budget = 0;
                self.f.write_at(&buf[..n], pos)?;
                return Err(io::Error::from_raw_os_error(libc::ENOSPC));
            }
            *budget -= buf.len() as u64;
        }
        self.f.write_at(buf, pos)
    }
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()> {
        self.f.read_at(buf, pos)
    }
    fn sync_data(&self) -> io::Result<()> {
        let delay = match self.plan() {
            Some(p) if p.fail_sync => return Err(io::Error::from_raw_os_error(libc::EIO)),
            Some(p) => p.sync_delay,
            None => Duration::ZERO,
        };
        let written = {
            let mut p = self.plan.lock();
            p.syncing += 1;
            p.syncs += 1;
            p.max_syncing = p.max_syncing.max(p.syncing);
            p.written.get(&self.path).map_or(0, |w| w.0)
        };
        std::thread::sleep(delay);
        let r = self.f.sync_data();
        let mut p = self.plan.lock();
        p.syncing -= 1;
        if r.is_ok() {
            let end = p.written.entry(self.path.clone()).or_default();
            end.1 = end.1.max(written);
        }
        r
    }
    fn sync_filesystem(&self) -> io::Result<()> {
        let mut p = self.plan.lock();
        if !p.syncfs {
            return Err(io::ErrorKind::Unsupported.into());
        }
        if p.fail_syncfs {
            p.syncfs_calls += 1;
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        let written: Vec<(PathBuf, u64)> =
            p.written.iter().map(|(k, v)| (k.clone(), v.0)).collect();
        drop(p);
        self.f.sync_filesystem()?;
        // Every file's data written before is durable now, as far as the plan's records go.
        let mut p = self.plan.lock();
        p.syncfs_calls += 1;
        for (path, end) in written {
            let e = p.written.entry(path).or_default();
            e.1 = e.1.max(end);
        }
        Ok(())
    }
    fn check_written(&self) -> io::Result<()> {
        if self.plan().is_some_and(|p| p.fail_check_written) {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        self.f.check_written()
    }
    fn drop_cached(&self, pos: u64, len: u64) -> io::Result<()> {
        {
            let mut p = self.plan.lock();
            let synced = p.written.get(&self.path).map_or(0, |w| w.1);
            p.dropped.push((self.path.clone(), pos, len, synced));
        }
        self.f.drop_cached(pos, len)
    }
    fn start_writeback(&self, pos: u64, len: u64) -> io::Result<()> {
        loop {
            match self.plan() {
                Some(mut p) if p.hold_writeback => p.held = true,
                _ => break,
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        self.f.start_writeback(pos, len)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        if self.plan().is_some_and(|p| p.fail_set_len) {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        self.f.set_len(len)
    }
    fn len(&self) -> io::Result<u64> {
        self.f.len()
    }
}

/// Several async waiters of a durable batch are resolved by a task on their runtime; if that
/// task never runs (the runtime is gone), they are resolved all the same.
#[test]
fn waiters_are_resolved_even_if_their_runtime_is_gone() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let handle = rt.handle().clone();
    drop(rt);
    let (tx1, rx1) = tokio::sync::oneshot::channel();
    let (tx2, rx2) = tokio::sync::oneshot::channel();
    let group = |first, tx| group::Group {
        first,
        count: 1,
        byte_start: 0,
        byte_end: 0,
        meta_start: 0,
        waiter: Some(group::Waiter::Async(tx)),
    };
    let (tx3, rx3) = tokio::sync::oneshot::channel();
    // Two logs' batches of one committer round, resolved together.
    group::resolve_durable(vec![
        group::Durable {
            rt: Some(handle.clone()),
            groups: vec![group(5, tx1), group(6, tx2)],
            committed: 7,
        },
        group::Durable {
            rt: Some(handle),
            groups: vec![group(40, tx3)],
            committed: 41,
        },
    ]);
    assert_eq!(rx1.blocking_recv().unwrap().unwrap(), 5);
    assert_eq!(rx2.blocking_recv().unwrap().unwrap(), 6);
    assert_eq!(rx3.blocking_recv().unwrap().unwrap(), 40);
}

/// The zeros ahead of the data are written by another thread: appends that reach them, seals
/// and closes must wait for them, or late zeros would land on acknowledged records (or past a
/// trailer). Slow zero writes make every such overlap happen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zeros_written_ahead_never_land_on_records() {
    let dir = tempfile::tempdir().unwrap();
    let io = FaultIo::default();
    io.0.lock().zero_delay = Duration::from_millis(3);
    let opts = opts_with_segments(256 << 10);
    let (log, _) = Log::open_with_io(dir.path(), opts.clone(), Arc::new(io.clone())).unwrap();
    let all = append_from_tasks(&log, 16, 60, |t, i| {
        // Small and large records, so a batch may cross the segment end right after zeros
        // were claimed for it.
        let len = 700 + (i as usize * 7919 + t as usize * 131) % 20_000;
        vec![(t * 60 + i) as u8 | 1; len]
    })
    .await;
    assert!(log.segments().len() > 3, "the appends should roll segments");
    assert_reads_back(&log, &all);
    drop(log);
    let v = verify_dir(dir.path()).unwrap();
    assert!(v.is_clean() && v.torn_tail_bytes == 0, "{v}");
    let (log, rep) = Log::open_with_io(dir.path(), opts, Arc::new(io)).unwrap();
    assert_eq!(rep.truncated_bytes, 0);
    assert_reads_back(&log, &all);
}

/// Runs `tasks` tasks that each append `each` records to `log`, the i-th of task t being
/// `payload(t, i)`; returns every (offset, payload).
async fn append_from_tasks(
    log: &Log,
    tasks: u64,
    each: u64,
    payload: impl Fn(u64, u64) -> Vec<u8> + Copy + Send + 'static,
) -> Vec<(u64, Vec<u8>)> {
    let tasks: Vec<_> = (0..tasks)
        .map(|t| {
            let log = log.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                for i in 0..each {
                    let p = payload(t, i);
                    got.push((log.append(1, t, p.clone()).await.unwrap(), p));
                }
                got
            })
        })
        .collect();
    joined(tasks).await
}

/// Every task's outputs, in task order.
async fn joined<T>(tasks: Vec<tokio::task::JoinHandle<Vec<T>>>) -> Vec<T> {
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

/// Every (offset, payload) of `records` reads back from `log`.
fn assert_reads_back(log: &Log, records: &[(u64, Vec<u8>)]) {
    for (o, p) in records {
        assert_eq!(&log.read(*o).unwrap().unwrap().payload, p, "offset {o}");
    }
}

/// An `Fsync` log drops the page cache of its bytes more than `KEEP_CACHED` behind the data
/// end (a log that only grows would otherwise take a fresh page for every page it writes):
/// only bytes already fdatasync'ed, whole pages, never the header's, each once; and the
/// records there read back from the disk, before and after a reopen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_bytes_far_behind_the_end_leave_the_page_cache() {
    const RECORD: usize = 8 << 10;
    let dir = tempfile::tempdir().unwrap();
    let io = FaultIo::default();
    let opts = opts_with_segments(64 << 20);
    let (log, _) = Log::open_with_io(dir.path(), opts.clone(), Arc::new(io.clone())).unwrap();
    let total = 3 * group::KEEP_CACHED;
    let per_task = total / RECORD as u64 / 16;
    let all = append_from_tasks(&log, 16, per_task, move |t, i| {
        vec![(t * per_task + i) as u8 | 1; RECORD]
    })
    .await;
    assert_eq!(log.segments().len(), 1, "one segment holds it all");
    assert_reads_back(&log, &all);
    drop(log);
    let dropped = std::mem::take(&mut io.0.lock().dropped);
    let mut next = 4096;
    for (path, pos, len, synced) in &dropped {
        // The active segment, written through the handle it was created with (`.seg.tmp`).
        assert!(path.to_string_lossy().contains(".seg"), "{path:?}");
        assert_eq!(
            (*pos, len % 4096),
            (next, 0),
            "whole pages, in order, each once"
        );
        assert!(
            pos + len <= *synced,
            "[{pos}, +{len}) dropped, synced to {synced}"
        );
        next = pos + len;
    }
    let data = (all.len() * RECORD) as u64;
    assert!(
        next + group::KEEP_CACHED + (2 << 20) >= data,
        "dropped up to {next} of {data}"
    );
    let (log, rep) = Log::open_with_io(dir.path(), opts, Arc::new(io)).unwrap();
    assert_eq!(rep.truncated_bytes, 0);
    assert_reads_back(&log, &all);
}

/// Opens `n` logs on one filesystem through `io`, with room for every append of the
/// shared-sync tests in one segment each.
fn logs_through(io: &FaultIo, n: usize) -> (Vec<tempfile::TempDir>, Vec<Log>) {
    let dirs: Vec<_> = (0..n).map(|_| tempfile::tempdir().unwrap()).collect();
    let opts = opts_with_segments(1 << 20);
    let logs = dirs
        .iter()
        .map(|d| {
            Log::open_with_io(d.path(), opts.clone(), Arc::new(io.clone()))
                .unwrap()
                .0
        })
        .collect();
    (dirs, logs)
}

/// Eight tasks each append to every log at once, like SNS publishes fanning out to eight
/// queues; returns each append's log, offset and payload, or its error.
async fn fan_out(logs: &[Log], rounds: u64) -> Vec<(usize, Result<u64, LogError>, Vec<u8>)> {
    let tasks: Vec<_> = (0..8u64)
        .map(|t| {
            let logs = logs.to_vec();
            tokio::spawn(async move {
                let mut out = Vec::new();
                for i in 0..rounds {
                    let appends: Vec<_> = logs
                        .iter()
                        .enumerate()
                        .map(|(l, log)| {
                            let (log, p) = (log.clone(), payload(t * 1000 + i * 10 + l as u64));
                            tokio::spawn(async move { (l, log.append(1, t, p.clone()).await, p) })
                        })
                        .collect();
                    for a in appends {
                        out.push(a.await.unwrap());
                    }
                }
                out
            })
        })
        .collect();
    joined(tasks).await
}

/// [`fan_out`] until a round has called `syncfs` (the committer is shared by the whole test
/// process, and another test's slow `syncfs` may have made it back off for a second).
async fn fan_out_until_syncfs(
    io: &FaultIo,
    logs: &[Log],
    rounds: u64,
) -> Vec<(usize, Result<u64, LogError>, Vec<u8>)> {
    let start = std::time::Instant::now();
    let mut all = fan_out(logs, rounds).await;
    while io.0.lock().syncfs_calls == 0 && start.elapsed() < Duration::from_secs(10) {
        all.extend(fan_out(logs, rounds).await);
    }
    all
}

/// A round of many logs on one filesystem shares one `syncfs` instead of an fdatasync each;
/// every acknowledged append is there, before and after a reopen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_of_many_logs_shares_one_syncfs() {
    let io = FaultIo::default();
    io.0.lock().syncfs = true;
    let (dirs, logs) = logs_through(&io, 8);
    let all = fan_out_until_syncfs(&io, &logs, 30).await;
    let (syncfs, syncs) = {
        let p = io.0.lock();
        (p.syncfs_calls, p.syncs)
    };
    assert!(syncfs > 0, "no round shared a syncfs ({syncs} fdatasyncs)");
    let check = |logs: &[Log]| {
        for (l, r, p) in &all {
            let o = *r.as_ref().unwrap();
            assert_eq!(
                &logs[*l].read(o).unwrap().unwrap().payload,
                p,
                "log {l} offset {o}"
            );
        }
    };
    check(&logs);
    drop(logs);
    let logs: Vec<Log> = dirs
        .iter()
        .map(|d| Log::open(d.path(), opts_small()).unwrap().0)
        .collect();
    check(&logs);
}

/// A failed `syncfs` leaves every log to its own fdatasync: the appends succeed, and no log
/// is poisoned for an error it cannot tell is its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_syncfs_falls_back_to_each_logs_fdatasync() {
    let io = FaultIo::default();
    {
        let mut p = io.0.lock();
        p.syncfs = true;
        p.fail_syncfs = true;
    }
    let (_dirs, logs) = logs_through(&io, 8);
    let all = fan_out_until_syncfs(&io, &logs, 10).await;
    assert!(all.iter().all(|(_, r, _)| r.is_ok()));
    let p = io.0.lock();
    assert!(p.syncfs_calls > 0 && p.syncs > 0);
    drop(p);
    for log in &logs {
        assert!(!log.inner.is_poisoned());
    }
}

/// When a `syncfs` fails because one log's data did not reach the disk, that log's own
/// fdatasync reports it: its appends fail and it is poisoned; the others are acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_syncfs_fails_only_the_log_whose_sync_fails() {
    let io = FaultIo::default();
    let (dirs, logs) = logs_through(&io, 8);
    let bad = dirs[3].path().to_string_lossy().into_owned();
    {
        let mut p = io.0.lock();
        p.syncfs = true;
        p.fail_syncfs = true;
        p.fail_sync = true;
        p.target = Some(Box::leak(bad.into_boxed_str()));
    }
    let all = fan_out_until_syncfs(&io, &logs, 5).await;
    for (l, r, _) in &all {
        assert_eq!(r.is_err(), *l == 3, "log {l}: {r:?}");
    }
    assert!(io.0.lock().syncfs_calls > 0);
    assert!(logs[3].inner.is_poisoned());
    assert!(!logs[2].inner.is_poisoned());
}

/// A `syncfs` that succeeds while one log's data was lost (its error went to another
/// handle): that log's own handle reports it, and only that log fails and is poisoned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_whose_data_a_syncfs_lost_fails_alone() {
    let io = FaultIo::default();
    let (dirs, logs) = logs_through(&io, 8);
    let bad = dirs[5].path().to_string_lossy().into_owned();
    {
        let mut p = io.0.lock();
        p.syncfs = true;
        p.fail_check_written = true;
        p.target = Some(Box::leak(bad.into_boxed_str()));
    }
    // Until a shared syncfs has covered log 5 (see `fan_out_until_syncfs`).
    let start = std::time::Instant::now();
    let mut all = fan_out(&logs, 5).await;
    while !logs[5].inner.is_poisoned() && start.elapsed() < Duration::from_secs(10) {
        all.extend(fan_out(&logs, 5).await);
    }
    assert!(io.0.lock().syncfs_calls > 0);
    assert!(all.iter().any(|(l, r, _)| *l == 5 && r.is_err()));
    for (l, r, _) in &all {
        assert!(*l == 5 || r.is_ok(), "log {l}: {r:?}");
    }
    assert!(logs[5].inner.is_poisoned());
    assert!(!logs[4].inner.is_poisoned());
}

/// Closing a log waits for its zeros in flight: a handle opened next on the same directory
/// appends where they would otherwise land late.
#[test]
fn closing_a_log_waits_for_its_zeros() {
    let dir = tempfile::tempdir().unwrap();
    let io = FaultIo::default();
    io.0.lock().zero_delay = Duration::from_millis(150);
    let (log, _) = Log::open_with_io(dir.path(), opts_small(), Arc::new(io)).unwrap();
    fill(&log, 0, 1);
    drop(log);
    let (log, _) = Log::open(dir.path(), opts_small()).unwrap();
    fill(&log, 1, 10);
    std::thread::sleep(Duration::from_millis(200));
    check_all(&log, 0, 11);
}

/// A file longer than the roll size (reopened with a smaller one) must not make the writer
/// forget the zeros past it: sealing still cuts them, so the sealed segment reopens.
#[test]
fn zeros_past_a_smaller_roll_size_are_cut_at_the_seal() {
    let dir = tempfile::tempdir().unwrap();
    let big = opts_with_segments(1 << 20);
    let (log, _) = Log::open(dir.path(), big).unwrap();
    log.append_blocking(1, 1, Vec::new()).unwrap();
    drop(log);
    let active = seg_files(dir.path()).pop().unwrap();
    let len = std::fs::metadata(&active).unwrap().len();
    let small = opts_with_segments(len - 100);
    let (log, _) = Log::open(dir.path(), small.clone()).unwrap();
    log.append_blocking(1, 2, vec![7; 40_000]).unwrap();
    let end = log.segments().last().unwrap().bytes;
    // One more record ending just short of the roll size, then the seal.
    let room = small.segment_bytes - end - 32 - RECORD_OVERHEAD as u64;
    log.append_blocking(1, 3, vec![8; room as usize]).unwrap();
    log.roll().unwrap();
    drop(log);
    let v = verify_dir(dir.path()).unwrap();
    assert!(v.is_clean(), "{v}");
    let (log, _) = Log::open(dir.path(), small).unwrap();
    assert_eq!(log.next_offset(), 3);
    assert_eq!(
        log.read(2).unwrap().unwrap().payload,
        vec![8; room as usize]
    );
}

/// Group commit under a slow disk: concurrent appenders share fdatasyncs, and an append
/// resolves only once durable and then reads back at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_share_fdatasyncs_and_read_back_once_resolved() {
    let dir = tempfile::tempdir().unwrap();
    let io = FaultIo::default();
    io.0.lock().target = Some(".seg");
    io.0.lock().sync_delay = Duration::from_millis(3);
    let (log, _) =
        Log::open_with_io(dir.path(), LogOptions::default(), Arc::new(io.clone())).unwrap();
    let base_syncs = io.0.lock().syncs;
    let mut tasks = Vec::new();
    for t in 0..64u64 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let mut offs = Vec::new();
            for i in 0..20u64 {
                let p = format!("t{t}-{i}").into_bytes();
                let off = log.append(1, t, p.clone()).await.unwrap();
                let r = log
                    .read(off)
                    .unwrap()
                    .expect("a resolved append is readable");
                assert_eq!(r.payload, p);
                offs.push(off);
            }
            offs
        }));
    }
    let mut all = joined(tasks).await;
    all.sort_unstable();
    assert_eq!(all, (0..1280).collect::<Vec<_>>());
    let p = io.0.lock();
    assert_eq!(p.max_syncing, 1, "one fdatasync of a log at a time");
    let syncs = p.syncs - base_syncs;
    assert!(
        syncs < 1280 / 4,
        "group commit: {syncs} fdatasyncs for 1280 appends"
    );
    drop(p);
    drop(log);
    let (log, rep) = Log::open(dir.path(), LogOptions::default()).unwrap();
    assert_eq!((rep.truncated_bytes, log.next_offset()), (0, 1280));
}

/// Appends that fan out to several logs at once (an SNS publish to many queues) are
/// committed by the shared committer in rounds that hold several logs: every append to a
/// healthy log is durable, dense and readable once resolved, while a log whose fdatasync
/// fails in the same rounds fails (and is poisoned) alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanned_out_appends_commit_per_log_and_a_failing_log_fails_alone() {
    const HEALTHY: usize = 4;
    const TASKS: u64 = 8;
    const FANOUTS: u64 = 25;
    let dirs: Vec<_> = (0..=HEALTHY)
        .map(|_| tempfile::tempdir().unwrap())
        .collect();
    let slow = FaultIo::default();
    slow.0.lock().target = Some(".seg");
    slow.0.lock().sync_delay = Duration::from_micros(200);
    let failing = FaultIo::default();
    failing.0.lock().target = Some(".seg");
    let logs: Vec<Log> = dirs
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let io = if i == HEALTHY { &failing } else { &slow };
            Log::open_with_io(d.path(), LogOptions::default(), Arc::new(io.clone()))
                .unwrap()
                .0
        })
        .collect();
    failing.0.lock().fail_sync = true;
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let logs = logs.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..FANOUTS {
                let mut sends = tokio::task::JoinSet::new();
                for (k, log) in logs.iter().enumerate() {
                    let log = log.clone();
                    let p = format!("{t}-{i}-{k}").into_bytes();
                    sends.spawn(async move {
                        let r = log.append(1, t, p.clone()).await;
                        if let Ok(off) = r {
                            let back = log.read(off).unwrap().expect("readable once resolved");
                            assert_eq!(back.payload, p);
                        }
                        (k, r.is_ok())
                    });
                }
                while let Some(r) = sends.join_next().await {
                    let (k, ok) = r.unwrap();
                    assert_eq!(ok, k != HEALTHY, "log {k}");
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert!(logs[HEALTHY].is_poisoned());
    let n = TASKS * FANOUTS;
    drop(logs);
    for (k, d) in dirs[..HEALTHY].iter().enumerate() {
        let (log, rep) = Log::open(d.path(), LogOptions::default()).unwrap();
        assert_eq!((rep.truncated_bytes, log.next_offset()), (0, n));
        let mut got: Vec<Vec<u8>> = log.scan(0).map(|r| r.unwrap().payload).collect();
        let mut want: Vec<Vec<u8>> = (0..TASKS)
            .flat_map(|t| (0..FANOUTS).map(move |i| format!("{t}-{i}-{k}").into_bytes()))
            .collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "log {k}");
    }
}

/// Between writing a batch and syncing it the committer does not hold the log's writer
/// lock. If a roll in that window fails its fdatasync (poisoning the log), the batch must
/// fail too: a later fdatasync could report success for bytes that never reached the disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_fails_if_a_roll_poisons_the_log_between_its_write_and_its_sync() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let ios: Vec<FaultIo> = (0..3).map(|_| FaultIo::default()).collect();
    for io in &ios {
        io.0.lock().target = Some(".seg");
    }
    let logs: Vec<Log> = dirs
        .iter()
        .zip(&ios)
        .map(|(d, io)| {
            Log::open_with_io(d.path(), LogOptions::default(), Arc::new(io.clone()))
                .unwrap()
                .0
        })
        .collect();
    let (busy, held, victim) = (&logs[0], &logs[1], &logs[2]);
    // Keep the committer busy so that the next two appends meet in one round.
    ios[0].0.lock().sync_delay = Duration::from_millis(100);
    let first = tokio::spawn({
        let busy = busy.clone();
        async move { busy.append(0, 0, vec![0; 10]).await }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    ios[1].0.lock().hold_writeback = true;
    let a = tokio::spawn({
        let held = held.clone();
        async move { held.append(0, 0, vec![1; 10]).await }
    });
    let b = tokio::spawn({
        let victim = victim.clone();
        async move { victim.append(0, 0, vec![2; 10]).await }
    });
    let t = std::time::Instant::now();
    while !ios[1].0.lock().held {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "the round never started"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // Both batches are written; the committer waits in `held`'s writeback.
    ios[2].0.lock().fail_sync = true;
    assert!(victim.roll().is_err());
    assert!(victim.is_poisoned());
    ios[1].0.lock().hold_writeback = false;
    assert!(first.await.unwrap().is_ok());
    assert!(a.await.unwrap().is_ok());
    assert!(
        b.await.unwrap().is_err(),
        "an append whose bytes were never synced was acknowledged"
    );
}

/// A failed fdatasync amid concurrent appenders fails its batch and poisons the log, every
/// later append fails, and nothing acknowledged is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_sync_amid_concurrent_appends_keeps_every_acknowledged_record() {
    let dir = tempfile::tempdir().unwrap();
    let io = FaultIo::default();
    io.0.lock().target = Some(".seg");
    io.0.lock().sync_delay = Duration::from_millis(2);
    let (log, _) =
        Log::open_with_io(dir.path(), LogOptions::default(), Arc::new(io.clone())).unwrap();
    let acked = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for t in 0..32u64 {
        let (log, acked, io) = (log.clone(), acked.clone(), io.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..50u64 {
                if t == 0 && i == 10 {
                    io.0.lock().fail_sync = true;
                }
                let p = format!("t{t}-{i}").into_bytes();
                match log.append(1, t, p.clone()).await {
                    Ok(off) => acked.lock().push((off, p)),
                    Err(_) => return,
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert!(log.is_poisoned());
    drop(log);
    let acked = std::mem::take(&mut *acked.lock());
    assert!(!acked.is_empty());
    let (log, _) = Log::open(dir.path(), LogOptions::default()).unwrap();
    for (off, p) in acked {
        assert_eq!(log.read(off).unwrap().expect("acknowledged").payload, p);
    }
}

#[test]
fn enospc_mid_write_fails_the_append_and_keeps_the_log_usable() {
    let dir = tempfile::tempdir().unwrap();
    let io = FaultIo::default();
    let (log, _) = Log::open_with_io(dir.path(), opts_small(), Arc::new(io.clone())).unwrap();
    fill(&log, 0, 50);
    let before = log.segments().last().unwrap().bytes;
    io.0.lock().write_budget = Some(10);
    let e = log.append_blocking(0, 0, vec![7; 100]).unwrap_err();
    assert_eq!(e.io_kind(), Some(io::ErrorKind::StorageFull), "{e}");
    assert!(!log.is_poisoned());
    assert_eq!(log.next_offset(), 50);
    assert_eq!(log.read(50).unwrap(), None);
    assert_eq!(log.segments().last().unwrap().bytes, before);
    check_all(&log, 0, 50);
    // Space comes back: offsets continue densely.
    io.0.lock().write_budget = None;
    fill(&log, 50, 50);
    check_all(&log, 0, 100);
    drop(log);
    let (log, rep) = Log::open(dir.path(), opts_small()).unwrap();
    assert_eq!(rep.truncated_bytes, 0);
    check_all(&log, 0, 100);
}

#[test]
fn segment_fsync_failure_during_seal_poisons_and_reopen_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let io = FaultIo::default();
    let (log, _) = Log::open_with_io(dir.path(), opts_small(), Arc::new(io.clone())).unwrap();
    fill(&log, 0, 20);
    // Trailer and indexes are written; the segment's fdatasync before the seal word fails.
    *io.0.lock() = Plan {
        target: Some(".seg"),
        fail_sync: true,
        ..Plan::default()
    };
    assert!(log.roll().is_err());
    assert!(log.is_poisoned());
    assert!(matches!(
        log.append_blocking(0, 0, vec![]),
        Err(LogError::Poisoned)
    ));
    check_all(&log, 0, 20);
    drop(log);
    let (log, _) = Log::open(dir.path(), opts_small()).unwrap();
    check_all(&log, 0, 20);
    fill(&log, 20, 5);
}

#[test]
fn failed_set_len_after_failed_write_poisons() {
    let dir = tempfile::tempdir().unwrap();
    let io = FaultIo::default();
    let (log, _) = Log::open_with_io(dir.path(), opts_small(), Arc::new(io.clone())).unwrap();
    fill(&log, 0, 5);
    {
        let mut p = io.0.lock();
        p.write_budget = Some(3);
        p.fail_set_len = true;
    }
    assert!(log.append_blocking(0, 0, vec![1; 50]).is_err());
    assert!(log.is_poisoned());
    check_all(&log, 0, 5);
    drop(log);
    let (log, rep) = Log::open(dir.path(), opts_small()).unwrap();
    assert_eq!(
        rep.truncated_bytes, 3,
        "the partial frame is cut by recovery"
    );
    check_all(&log, 0, 5);
}

/// The faults tried on index and checkpoint files: ENOSPC after a partial write (at several
/// byte counts), or EIO from the fdatasync before the rename.
fn file_faults() -> Vec<(Plan, io::ErrorKind)> {
    let mut v: Vec<(Plan, io::ErrorKind)> = [0u64, 1, 31, 40]
        .into_iter()
        .map(|b| {
            (
                Plan {
                    write_budget: Some(b),
                    ..Plan::default()
                },
                io::ErrorKind::StorageFull,
            )
        })
        .collect();
    v.push((
        Plan {
            fail_sync: true,
            ..Plan::default()
        },
        io::ErrorKind::Other,
    ));
    v
}

fn no_tmp_files(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        let n = e.unwrap().file_name();
        assert!(!n.to_string_lossy().ends_with(".tmp"), "leftover {n:?}");
    }
}

#[test]
fn index_write_failure_fails_the_roll_and_keeps_the_log_usable() {
    for target in [".idx", ".tix"] {
        for (plan, kind) in file_faults() {
            let dir = tempfile::tempdir().unwrap();
            let io = FaultIo::default();
            let (log, _) =
                Log::open_with_io(dir.path(), opts_small(), Arc::new(io.clone())).unwrap();
            fill(&log, 0, 20);
            log.roll().unwrap();
            fill(&log, 20, 20);
            let segs = log.segments().len();
            *io.0.lock() = Plan {
                target: Some(target),
                ..plan
            };
            let e = log.roll().unwrap_err();
            let what = format!("{target} {:?}", io.0.lock().write_budget);
            if kind == io::ErrorKind::Other {
                assert!(e.io_kind().is_some(), "{what}: {e}");
            } else {
                assert_eq!(e.io_kind(), Some(kind), "{what}: {e}");
            }
            assert!(!log.is_poisoned(), "{what}");
            assert_eq!(log.segments().len(), segs, "{what}");
            no_tmp_files(dir.path());
            check_all(&log, 0, 40);
            // Appends continue in the still-active segment; rolls work again once the disk
            // does.
            fill(&log, 40, 5);
            *io.0.lock() = Plan::default();
            fill(&log, 45, 5);
            check_all(&log, 0, 50);
            let r = verify_dir(dir.path());
            assert!(r.is_ok(), "{what}: {r:?}");
            // Reopen straight after the failure (an orphan index may be left): recovers.
            drop(log);
            let (log, rep) = Log::open(dir.path(), opts_small()).unwrap();
            assert_eq!(rep.truncated_bytes, 0, "{what}");
            check_all(&log, 0, 50);
            log.roll().unwrap();
            fill(&log, 50, 5);
            drop(log);
            let (log, rep) = Log::open(dir.path(), opts_small()).unwrap();
            assert_eq!(rep.rebuilt_indexes, 0, "{what}");
            check_all(&log, 0, 55);
            assert!(verify_dir(dir.path()).is_ok(), "{what}");
        }
    }
}

#[test]
fn trailer_write_failure_fails_the_roll_without_poisoning() {
    let dir = tempfile::tempdir().unwrap();
    let io = FaultIo::default();
    let (log, _) = Log::open_with_io(dir.path(), opts_small(), Arc::new(io.clone())).unwrap();
    fill(&log, 0, 20);
    // 10 bytes of the 64-byte trailer land, then ENOSPC: they are cut again.
    io.0.lock().write_budget = Some(10);
    assert_eq!(
        log.roll().unwrap_err().io_kind(),
        Some(io::ErrorKind::StorageFull)
    );
    assert!(!log.is_poisoned());
    *io.0.lock() = Plan::default();
    fill(&log, 20, 5);
    drop(log);
    let (log, rep) = Log::open(dir.path(), opts_small()).unwrap();
    assert_eq!(rep.truncated_bytes, 0, "the partial trailer was cut");
    check_all(&log, 0, 25);
}

#[test]
fn index_rebuild_failure_at_open_is_an_error_and_the_next_open_rebuilds() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (log, _) = Log::open(dir.path(), opts_small()).unwrap();
        fill(&log, 0, 30);
        log.roll().unwrap();
        fill(&log, 30, 5);
    }
    std::fs::remove_file(dir.path().join(segment::idx_name(0))).unwrap();
    for (plan, _) in file_faults() {
        let io = FaultIo(Arc::new(Mutex::new(Plan {
            target: Some(".idx"),
            ..plan
        })));
        let e = Log::open_with_io(dir.path(), opts_small(), Arc::new(io)).unwrap_err();
        assert!(e.io_kind().is_some(), "{e}");
        no_tmp_files(dir.path());
    }
    let (log, rep) = Log::open(dir.path(), opts_small()).unwrap();
    assert_eq!(rep.rebuilt_indexes, 1);
    check_all(&log, 0, 35);
}

#[test]
fn checkpoint_write_failure_keeps_the_previous_checkpoint() {
    for (plan, _) in file_faults() {
        let dir = tempfile::tempdir().unwrap();
        let io = FaultIo::default();
        let (log, _) = Log::open_with_io(dir.path(), opts_small(), Arc::new(io.clone())).unwrap();
        fill(&log, 0, 10);
        log.write_checkpoint(5, b"first").unwrap();
        *io.0.lock() = Plan {
            target: Some("checkpoint"),
            ..plan
        };
        let e = log.write_checkpoint(10, &[7u8; 100]).unwrap_err();
        assert!(e.io_kind().is_some(), "{e}");
        assert!(!log.is_poisoned());
        assert_eq!(log.read_checkpoint().unwrap(), Some((5, b"first".to_vec())));
        no_tmp_files(dir.path());
        // Appends are unaffected; a retry succeeds once the disk does.
        fill(&log, 10, 5);
        assert!(log.write_checkpoint(15, b"x").is_err());
        *io.0.lock() = Plan::default();
        drop(log);
        let (log, _) = Log::open(dir.path(), opts_small()).unwrap();
        assert_eq!(log.read_checkpoint().unwrap(), Some((5, b"first".to_vec())));
        check_all(&log, 0, 15);
        log.write_checkpoint(15, b"second").unwrap();
        assert_eq!(
            log.read_checkpoint().unwrap(),
            Some((15, b"second".to_vec()))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fsync_failure_poisons_until_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let io = FaultIo::default();
    let (log, _) = Log::open_with_io(dir.path(), opts_small(), Arc::new(io.clone())).unwrap();
    for i in 0..10 {
        assert_eq!(
            log.append((i % 5) as u8, ts_of(i), payload(i))
                .await
                .unwrap(),
            i
        );
    }
    io.0.lock().fail_sync = true;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let log = log.clone();
        tasks.push(tokio::spawn(
            async move { log.append(0, 0, vec![1; 10]).await },
        ));
    }
    for t in tasks {
        assert!(t.await.unwrap().is_err());
    }
    assert!(log.is_poisoned());
    io.0.lock().fail_sync = false;
    assert!(matches!(
        log.append(0, 0, vec![]).await,
        Err(LogError::Poisoned)
    ));
    assert!(matches!(log.roll(), Err(LogError::Poisoned)));
    // Still readable and nothing unacknowledged became visible.
    assert_eq!(log.next_offset(), 10);
    check_all(&log, 0, 10);
    drop(log);
    let (log, _) = Log::open(dir.path(), opts_small()).unwrap();
    // Unacknowledged records may or may not be there after a failed fsync, but the
    // acknowledged ones are, and the log is writable again.
    check_all(&log, 0, 10);
    let n = log.next_offset();
    assert_eq!(log.append(0, 0, vec![]).await.unwrap(), n);
}

#[test]
fn interval_and_none_modes() {
    for d in [
        Durability::Interval(Duration::from_millis(2)),
        Durability::None,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let opts = LogOptions {
            durability: d,
            ..opts_small()
        };
        let (log, _) = Log::open(dir.path(), opts.clone()).unwrap();
        fill(&log, 0, 100);
        log.flush().unwrap();
        std::thread::sleep(Duration::from_millis(10));
        drop(log);
        let (log, _) = Log::open(dir.path(), opts).unwrap();
        check_all(&log, 0, 100);
    }
}

#[test]
fn interval_syncer_failure_poisons() {
    let dir = tempfile::tempdir().unwrap();
    let io = FaultIo::default();
    let opts = LogOptions {
        durability: Durability::Interval(Duration::from_millis(1)),
        ..opts_small()
    };
    let (log, _) = Log::open_with_io(dir.path(), opts, Arc::new(io.clone())).unwrap();
    fill(&log, 0, 5);
    io.0.lock().fail_sync = true;
    fill(&log, 5, 1); // resolves after the write; the background fdatasync then fails
    let t = std::time::Instant::now();
    while !log.is_poisoned() && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(log.is_poisoned());
    assert!(matches!(
        log.append_blocking(0, 0, vec![]),
        Err(LogError::Poisoned)
    ));
    check_all(&log, 0, 6);
}

#[test]
fn readers_race_appends_rolls_and_retention() {
    let dir = tempfile::tempdir().unwrap();
    let opts = LogOptions {
        segment_bytes: 2048,
        durability: Durability::None,
        index_interval_bytes: 128,
        ..LogOptions::default()
    };
    let (log, _) = Log::open(dir.path(), opts).unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();
    for r in 0..2u64 {
        let log = log.clone();
        let stop = stop.clone();
        readers.push(std::thread::spawn(move || {
            let mut x = r + 1;
            let mut seen = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || seen == 0 {
                let (start, next) = (log.start_offset(), log.next_offset());
                if next > start {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let o = start + (x >> 33) % (next - start);
                    // Retention may have removed it meanwhile; otherwise it must be intact.
                    if let Some(rec) = log.read(o).unwrap() {
                        assert_eq!(rec.payload, payload(o));
                        seen += 1;
                    }
                    let mut prev = None;
                    for rec in log.scan(o).take(50) {
                        let rec = rec.unwrap();
                        assert_eq!(rec.payload, payload(rec.offset));
                        if let Some(p) = prev {
                            assert!(rec.offset > p);
                        }
                        prev = Some(rec.offset);
                    }
                    let _ = log.offset_for_timestamp(1200).unwrap();
                }
            }
            seen
        }));
    }
    for i in 0..3000u64 {
        assert_eq!(
            log.append_blocking((i % 5) as u8, ts_of(i), payload(i))
                .unwrap(),
            i
        );
        if i % 500 == 0 {
            log.enforce_retention(0, None, Some(16 * 1024)).unwrap();
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    let start = log.start_offset();
    check_all(&log, start, 3000);
}

#[test]
fn log_outlives_the_runtime_that_used_it() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), opts_small()).unwrap();
    for round in 0..3u64 {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        let l = log.clone();
        rt.block_on(async move {
            for i in 0..5 {
                l.append(0, 0, vec![round as u8, i]).await.unwrap();
            }
        });
        // Start appends and shut the runtime down while they are in flight.
        let l = log.clone();
        rt.spawn(async move {
            let _ = l.append(0, 0, vec![]).await;
        });
        rt.shutdown_background();
    }
    // Not hung: appends from a plain thread still work.
    let n = log.next_offset();
    assert!(log.append_blocking(0, 0, vec![1]).unwrap() >= n);
}

#[test]
fn durability_parses() {
    assert_eq!("fsync".parse::<Durability>().unwrap(), Durability::Fsync);
    assert_eq!("none".parse::<Durability>().unwrap(), Durability::None);
    assert_eq!(
        "interval=25".parse::<Durability>().unwrap(),
        Durability::Interval(Duration::from_millis(25))
    );
    for bad in ["", "interval=", "interval=0", "interval=x", "FSYNC2"] {
        assert!(bad.parse::<Durability>().is_err(), "{bad}");
    }
}

#[test]
fn segment_age_rolls() {
    let dir = tempfile::tempdir().unwrap();
    let opts = LogOptions {
        segment_age: Some(Duration::from_millis(200)),
        durability: Durability::None,
        ..LogOptions::default()
    };
    let (log, _) = Log::open(dir.path(), opts).unwrap();
    fill(&log, 0, 3);
    std::thread::sleep(Duration::from_millis(250));
    fill(&log, 3, 1);
    // (A slow machine may roll earlier too; the old segment must have rolled by now.)
    let segs = log.segments();
    assert!(segs.len() >= 2);
    assert_eq!(segs.last().unwrap().base_offset, 3);
    check_all(&log, 0, 4);
}

#[test]
fn oversized_records_get_their_own_segment() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), opts_small()).unwrap();
    log.append_blocking(0, 0, vec![1; 10]).unwrap();
    log.append_blocking(0, 0, vec![2; 10_000]).unwrap();
    log.append_blocking(0, 0, vec![3; 10]).unwrap();
    assert_eq!(log.read(1).unwrap().unwrap().payload, vec![2; 10_000]);
    assert_eq!(log.segments().len(), 3);
}

#[test]
fn fuzz_entry_point_survives_random_bytes() {
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    // Valid-looking material mutated, plus pure noise.
    let mut frames = Vec::new();
    for i in 0..10u64 {
        record::encode_into(&mut frames, 1, i, i, &[i as u8; 20]);
    }
    // MILLPOND_FUZZ_ROUNDS raises the count for a longer local soak.
    let rounds: u64 = std::env::var("MILLPOND_FUZZ_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    for round in 0..rounds {
        let mode = (round % 4) as u8;
        let mut data = vec![mode];
        if round % 2 == 0 {
            data.extend_from_slice(&frames);
            for _ in 0..(next() % 4) {
                let i = (next() as usize) % data.len().max(1);
                data[i] ^= next() as u8;
            }
            let cut = (next() as usize) % (data.len() + 1);
            data.truncate(cut.max(1));
        } else {
            let n = (next() % 300) as usize;
            data.extend((0..n).map(|_| next() as u8));
        }
        fuzz_open_bytes(&data);
    }
    fuzz_open_bytes(&[]);
    fuzz_open_bytes(&[1]);
}

// ---------------------------------------------------------------------------------------
// Model-based property test

#[derive(Debug, Clone)]
enum Op {
    Append(u8, u64, usize),
    Batch(Vec<(u8, u64, usize)>),
    Roll,
    TruncateFront(u64),
    Retention(u64, Option<u64>, Option<u64>),
    /// Hollows the segment at this index (modulo the segment count).
    Hollow(usize),
    Reopen,
    Clear,
    /// An append that hits ENOSPC after this many bytes.
    AppendEnospc(u64, usize),
    /// ENOSPC and then a failing ftruncate (poisons; recovery must cut the partial frame).
    AppendEnospcNoCut(u64, usize),
    /// An append whose fdatasync fails (poisons; the record may or may not survive reopen).
    AppendSyncFails(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (any::<u8>(), 0u64..1000, 0usize..300).prop_map(|(k, t, n)| Op::Append(k, t, n)),
        2 => prop::collection::vec((any::<u8>(), 0u64..1000, 0usize..200), 1..6).prop_map(Op::Batch),
        1 => Just(Op::Roll),
        1 => (0u64..120).prop_map(Op::TruncateFront),
        1 => (0u64..1200, prop::option::of(0u64..1000), prop::option::of(0u64..20_000))
            .prop_map(|(n, a, b)| Op::Retention(n, a, b)),
        1 => (0usize..8).prop_map(Op::Hollow),
        1 => Just(Op::Reopen),
        1 => Just(Op::Clear),
        1 => (0u64..80, 0usize..200).prop_map(|(b, n)| Op::AppendEnospc(b, n)),
        1 => (0u64..80, 0usize..200).prop_map(|(b, n)| Op::AppendEnospcNoCut(b, n)),
        1 => (0usize..200).prop_map(Op::AppendSyncFails),
    ]
}

proptest! {
    // PROPTEST_CASES raises the count for a longer local soak.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(48),
        ..ProptestConfig::default()
    })]

    #[test]
    fn model_keeps_exactly_the_acknowledged_records(ops in prop::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let opts = LogOptions { segment_bytes: 1024, index_interval_bytes: 128, ..LogOptions::default() };
        let io = FaultIo::default();
        let (mut log, _) = Log::open_with_io(dir.path(), opts.clone(), Arc::new(io.clone())).unwrap();
        // Model: offset -> record, plus the first offset still stored.
        let mut model: std::collections::BTreeMap<u64, OwnedRecord> = Default::default();
        let mut next = 0u64;
        let mk = |o: u64, k: u8, t: u64, n: usize| OwnedRecord { offset: o, kind: k, timestamp_ms: t, payload: vec![(o % 251) as u8; n] };
        for op in ops {
            match op {
                Op::Append(k, t, n) => {
                    let r = mk(next, k, t, n);
                    prop_assert_eq!(log.append_blocking(k, t, r.payload.clone()).unwrap(), next);
                    model.insert(next, r);
                    next += 1;
                }
                Op::Batch(rs) => {
                    let recs: Vec<OwnedRecord> = rs.iter().enumerate().map(|(i, &(k, t, n))| mk(next + i as u64, k, t, n)).collect();
                    let first = log.append_batch_blocking(recs.iter().map(|r| (r.kind, r.timestamp_ms, r.payload.clone())).collect()).unwrap();
                    prop_assert_eq!(first, next);
                    for r in recs { next += 1; model.insert(r.offset, r); }
                }
                Op::Roll => log.roll().unwrap(),
                Op::TruncateFront(b) => {
                    log.truncate_front(b).unwrap();
                }
                Op::Retention(now, age, bytes) => {
                    let before = log.start_offset();
                    let dropped = log.enforce_retention(now, age, bytes).unwrap();
                    prop_assert_eq!(log.start_offset() - before, dropped);
                }
                Op::Hollow(i) => {
                    let segs = log.segments();
                    let s = &segs[i % segs.len()];
                    let dropped = log.hollow(s.base_offset).unwrap();
                    if s.sealed && !s.hollow {
                        prop_assert_eq!(dropped, s.next_offset - s.base_offset);
                        let range = s.base_offset..s.next_offset;
                        model.retain(|o, _| !range.contains(o));
                    } else {
                        prop_assert_eq!(dropped, 0);
                    }
                }
                Op::Clear => {
                    log.clear().unwrap();
                    prop_assert_eq!(log.start_offset(), next);
                }
                Op::Reopen => {
                    drop(log);
                    let (l, rep) = Log::open_with_io(dir.path(), opts.clone(), Arc::new(io.clone())).unwrap();
                    prop_assert_eq!(rep.truncated_bytes, 0);
                    log = l;
                }
                Op::AppendEnospc(budget, n) => {
                    // A partial write (or a failed roll) must not change the acknowledged log.
                    io.0.lock().write_budget = Some(budget.min(n as u64 + 31));
                    let r = log.append_blocking(1, 1, vec![7; n]);
                    io.0.lock().write_budget = None;
                    prop_assert!(r.is_err());
                    if log.is_poisoned() {
                        drop(log);
                        let (l, _) = Log::open_with_io(dir.path(), opts.clone(), Arc::new(io.clone())).unwrap();
                        log = l;
                    }
                }
                Op::AppendEnospcNoCut(budget, n) => {
                    {
                        let mut p = io.0.lock();
                        p.write_budget = Some(budget.min(n as u64 + 31));
                        p.fail_set_len = true;
                    }
                    let r = log.append_blocking(1, 1, vec![7; n]);
                    *io.0.lock() = Plan::default();
                    prop_assert!(r.is_err());
                    prop_assert!(log.is_poisoned());
                    prop_assert!(matches!(log.append_blocking(0, 0, vec![]), Err(LogError::Poisoned)));
                    drop(log);
                    let (l, _) = Log::open_with_io(dir.path(), opts.clone(), Arc::new(io.clone())).unwrap();
                    log = l;
                }
                Op::AppendSyncFails(n) => {
                    io.0.lock().fail_sync = true;
                    let r = log.append_blocking(3, 3, vec![9; n]);
                    io.0.lock().fail_sync = false;
                    prop_assert!(r.is_err());
                    prop_assert_eq!(log.next_offset(), next, "unacknowledged record became visible");
                    // If not poisoned, the failed fdatasync was of a temp index file during
                    // the roll this append triggered: nothing of the segment is in doubt, the
                    // record was not written, and the log carries on.
                    if log.is_poisoned() {
                        drop(log);
                        let (l, _) = Log::open_with_io(dir.path(), opts.clone(), Arc::new(io.clone())).unwrap();
                        log = l;
                        // Written but not acknowledged: it may survive; if so it is intact.
                        if log.next_offset() == next + 1 {
                            let r = log.read(next).unwrap().unwrap();
                            prop_assert_eq!(&r.payload, &vec![9u8; n]);
                            model.insert(next, r);
                            next += 1;
                        }
                    }
                }
            }
            // Whole-segment deletion: the model loses everything below start_offset.
            let start = log.start_offset();
            model = model.split_off(&start);
            prop_assert_eq!(log.next_offset(), next);
            prop_assert!(start <= next);
            // Every acknowledged record at or after start_offset is present, in order.
            let got: Vec<OwnedRecord> = log.scan(0).map(|r| r.unwrap()).collect();
            let want: Vec<OwnedRecord> = model.values().cloned().collect();
            prop_assert_eq!(got, want);
            let segs = log.segments();
            for w in segs.windows(2) { prop_assert_eq!(w[0].next_offset, w[1].base_offset); }
        }
        // And timestamp lookups agree with brute force.
        for ts in [0u64, 1, 100, 500, 999, 1000] {
            let want = model.values().find(|r| r.timestamp_ms >= ts).map(|r| r.offset);
            prop_assert_eq!(log.offset_for_timestamp(ts).unwrap(), want);
        }
        drop(log);
        prop_assert!(verify_dir(dir.path()).unwrap().is_clean());
    }
}

/// A crash while a directory of logs is removed (a deleted queue or stream) leaves it under
/// its `.deleting` name, which `verify` does not take for a log: before, the half-deleted log
/// (segments gone from its middle) was reported as corrupt although nothing live was lost.
#[test]
fn a_directory_caught_mid_removal_is_not_a_log() {
    let root = tempfile::tempdir().unwrap();
    let (live, doomed) = (root.path().join("live"), root.path().join("doomed"));
    for dir in [&live, &doomed] {
        let (log, _) = Log::open(dir, opts_small()).unwrap();
        fill(&log, 0, 300);
    }
    // What a kill in the middle of `remove_dir` leaves: the renamed directory, part deleted.
    let renamed = root.path().join(format!("doomed{DELETING_SUFFIX}"));
    std::fs::rename(&doomed, &renamed).unwrap();
    std::fs::remove_file(&seg_files(&renamed)[1]).unwrap();
    assert_eq!(find_log_dirs(root.path()).unwrap(), vec![live.clone()]);
    assert!(verify_dir(&live).unwrap().is_clean());
    // A whole removal leaves nothing, even past the leftover of an earlier removal of the
    // same name; removing what is gone already is no error.
    let stale = root.path().join(format!("live{DELETING_SUFFIX}"));
    std::fs::create_dir_all(stale.join("x")).unwrap();
    remove_dir(&live).unwrap();
    remove_dir(&live).unwrap();
    remove_dir(&renamed).unwrap();
    assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0);
}

// ---- Recycled segment files (spare.rs, storage-format.md §3.5) ----

fn opts_recycling() -> LogOptions {
    opts_with_segments(64 << 10)
}

fn inode(p: &Path) -> u64 {
    std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap())
}

fn spare_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == spare::SPARE_EXT))
        .collect();
    v.sort();
    v
}

/// Appends records from `from` until the log has `n` segments; returns the next offset.
fn fill_to_segments(log: &Log, from: u64, n: usize) -> u64 {
    let mut i = from;
    while log.segments().len() < n {
        fill(log, i, 1);
        i += 1;
    }
    i
}

/// A log of three segments whose first was truncated into the spare, then rolled once
/// more, so that its active segment is the first one's file holding `extra` records.
/// Returns the log, the first remaining offset, the next offset and the old file's length.
fn recycled_log(dir: &Path, extra: u64) -> (Log, u64, u64, u64) {
    let (log, _) = Log::open(dir, opts_recycling()).unwrap();
    let next = fill_to_segments(&log, 0, 3);
    let segs = log.segments();
    let (old, old_len) = (
        inode(&segs[0].path),
        std::fs::metadata(&segs[0].path).unwrap().len(),
    );
    log.truncate_front(segs[1].base_offset).unwrap();
    let spares = spare_files(dir);
    assert_eq!(spares.len(), 1, "{spares:?}");
    assert_eq!(inode(&spares[0]), old);
    let next = fill_to_segments(&log, next, 3);
    fill(&log, next, extra);
    assert!(spare_files(dir).is_empty());
    assert_eq!(inode(&log.segments()[2].path), old);
    (log, segs[1].base_offset, next + extra, old_len)
}

#[test]
fn a_dropped_segment_file_becomes_the_next_segment() {
    let dir = tempfile::tempdir().unwrap();
    let (log, first, mut next, old_len) = recycled_log(dir.path(), 5);
    let active = log.segments().last().unwrap().clone();
    let bytes = std::fs::read(&active.path).unwrap();
    assert!(
        segment::parse_header(&active.path, &bytes)
            .unwrap()
            .recycled
    );
    // The file keeps its blocks: zeros after the data to the next page, then what the
    // dropped segment left there.
    let end = active.bytes as usize;
    let page_end = (end / 4096 + 1) * 4096;
    assert_eq!(bytes.len() as u64, old_len);
    assert!(bytes[end..page_end].iter().all(|&b| b == 0));
    assert!(bytes[page_end..].iter().any(|&b| b != 0));
    let v = verify_dir(dir.path()).unwrap();
    assert!(v.is_clean() && v.torn_tail_bytes == 0, "{v}");
    drop(log);
    // The leftovers are neither records nor a reported torn write; open cuts them.
    let (log, rep) = Log::open(dir.path(), opts_recycling()).unwrap();
    assert_eq!((rep.truncated_bytes, rep.truncated_at), (0, None));
    assert_eq!(std::fs::metadata(&active.path).unwrap().len(), end as u64);
    check_all(&log, first, next);
    fill(&log, next, 3);
    next += 3;
    drop(log);
    let (log, rep) = Log::open(dir.path(), opts_recycling()).unwrap();
    assert_eq!(rep.truncated_bytes, 0);
    check_all(&log, first, next);
}

#[test]
fn a_torn_write_in_a_recycled_segment_is_cut_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (log, first, next, _) = recycled_log(dir.path(), 5);
    let active = log.segments().last().unwrap().clone();
    drop(log);
    // The first bytes of a write that did not complete; the dropped segment's bytes after
    // the next page boundary are not part of it.
    let end = active.bytes;
    let torn = (4096 - end % 4096).min(10);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&active.path)
        .unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &vec![0xEE; torn as usize], end).unwrap();
    drop(f);
    assert_eq!(verify_dir(dir.path()).unwrap().torn_tail_bytes, torn);
    let (log, rep) = Log::open(dir.path(), opts_recycling()).unwrap();
    assert_eq!(rep.truncated_bytes, torn);
    assert_eq!(rep.truncated_at, Some((active.path.clone(), end)));
    check_all(&log, first, next);
}

#[test]
fn a_dropped_segment_a_reader_holds_is_recycled_only_once_released() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), opts_recycling()).unwrap();
    let next = fill_to_segments(&log, 0, 3);
    let segs = log.segments();
    let old = inode(&segs[0].path);
    let held = log.segment_for(segs[0].base_offset).unwrap();
    log.truncate_front(segs[1].base_offset).unwrap();
    let next = fill_to_segments(&log, next, 3);
    assert_ne!(inode(&log.segments()[2].path), old);
    assert_eq!(spare_files(dir.path()).len(), 1);
    // The reader's mapping still shows the dropped records.
    let mut win = segment::Window::new(segment::Window::LOOKUP);
    assert!(held.find(segs[0].base_offset, &mut win).unwrap().is_some());
    drop(held);
    let next = fill_to_segments(&log, next, 4);
    assert_eq!(inode(&log.segments()[3].path), old);
    check_all(&log, segs[1].base_offset, next);
}

#[test]
fn a_hollowed_segment_file_is_recycled_and_a_crash_left_second_name_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), opts_recycling()).unwrap();
    let next = fill_to_segments(&log, 0, 4);
    let segs = log.segments();
    let old = inode(&segs[1].path);
    assert!(log.hollow(segs[1].base_offset).unwrap() > 0);
    let spares = spare_files(dir.path());
    assert_eq!(spares.len(), 1);
    assert_eq!(inode(&spares[0]), old);
    assert_eq!(
        std::os::unix::fs::MetadataExt::nlink(&std::fs::metadata(&spares[0]).unwrap()),
        1
    );
    assert_ne!(inode(&segs[1].path), old);
    let next = fill_to_segments(&log, next, 5);
    assert_eq!(inode(&log.segments()[4].path), old);
    drop(log);
    // A crash between the link and the hollow image's rename: the spare's name is a second
    // name of a live segment, which must never be written over.
    let live = &segs[2];
    std::fs::hard_link(
        &live.path,
        dir.path().join(spare::spare_name(live.base_offset)),
    )
    .unwrap();
    let (log, _) = Log::open(dir.path(), opts_recycling()).unwrap();
    assert!(spare_files(dir.path()).is_empty());
    let next = fill_to_segments(&log, next, 6);
    assert_ne!(inode(&log.segments()[5].path), inode(&live.path));
    check_all(&log, live.base_offset, next);
    assert_eq!(log.read(segs[1].base_offset).unwrap(), None);
    check_all(&log, 0, segs[1].base_offset);
}

#[test]
fn clear_deletes_the_spare_and_a_vanished_spare_is_not_missed() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), opts_recycling()).unwrap();
    let next = fill_to_segments(&log, 0, 3);
    log.truncate_front(log.segments()[1].base_offset).unwrap();
    let spare = spare_files(dir.path()).pop().unwrap();
    std::fs::remove_file(&spare).unwrap();
    // The roll falls back to a new file.
    let next = fill_to_segments(&log, next, 3);
    check_all(&log, log.start_offset(), next);
    log.truncate_front(log.segments()[1].base_offset).unwrap();
    assert_eq!(spare_files(dir.path()).len(), 1);
    log.clear().unwrap();
    assert!(spare_files(dir.path()).is_empty());
    fill(&log, next, 2);
    check_all(&log, next, next + 2);
}

#[test]
fn a_scan_begun_while_a_segment_was_active_keeps_its_file_from_being_recycled() {
    // Segments bigger than a scan's read-ahead window, so the scan goes back to the file.
    let dir = tempfile::tempdir().unwrap();
    let opts = opts_with_segments(1 << 20);
    let (log, _) = Log::open(dir.path(), opts).unwrap();
    let rec = |i: u64| (1u8, i, vec![(i % 251) as u8; 1000]);
    let mut next = 0;
    let mut append = |n: u64| {
        log.append_batch_blocking((next..next + n).map(rec).collect())
            .unwrap();
        next += n;
    };
    while log.segments().len() < 2 {
        append(100);
    }
    append(700);
    let first = log.segments()[1].base_offset;
    let end = log.next_offset();
    let mut it = log.scan(first);
    assert_eq!(it.next().unwrap().unwrap().payload, rec(first).2);
    while log.segments().len() < 3 {
        append(100);
    }
    // Both older segments go; the one the scan is in becomes the spare.
    log.truncate_front(log.segments()[2].base_offset).unwrap();
    assert_eq!(spare_files(dir.path()).len(), 1);
    // The next segment, filled most of the way, must not be that file.
    while log.segments().len() < 2 {
        append(100);
    }
    append(800);
    assert_eq!(log.segments().len(), 2);
    for k in first + 1..end {
        let r = it.next().unwrap().unwrap();
        assert_eq!((r.offset, r.payload), (k, rec(k).2));
    }
    assert!(it.next().is_none());
    drop(it);
    let old = inode(&spare_files(dir.path())[0]);
    while log.segments().len() < 3 {
        append(100);
    }
    assert_eq!(inode(&log.segments()[2].path), old);
}

#[test]
fn enospc_in_a_recycled_segment_fails_the_append_and_keeps_the_log_usable() {
    let dir = tempfile::tempdir().unwrap();
    let io = FaultIo::default();
    let open = || Log::open_with_io(dir.path(), opts_recycling(), Arc::new(io.clone()));
    let (log, _) = open().unwrap();
    let next = fill_to_segments(&log, 0, 3);
    let first = log.segments()[1].base_offset;
    log.truncate_front(first).unwrap();
    let next = fill_to_segments(&log, next, 3);
    let active = log.segments().last().unwrap().clone();
    let bytes = std::fs::read(&active.path).unwrap();
    assert!(
        segment::parse_header(&active.path, &bytes)
            .unwrap()
            .recycled
    );
    io.0.lock().write_budget = Some(10);
    let e = log.append_blocking(0, 0, vec![7; 100]).unwrap_err();
    assert_eq!(e.io_kind(), Some(io::ErrorKind::StorageFull), "{e}");
    assert!(!log.is_poisoned());
    assert_eq!(log.next_offset(), next);
    io.0.lock().write_budget = None;
    fill(&log, next, 20);
    check_all(&log, first, next + 20);
    drop(log);
    let (log, rep) = open().unwrap();
    assert_eq!(rep.truncated_bytes, 0);
    check_all(&log, first, next + 20);
}
