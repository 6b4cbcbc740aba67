//! Host build of the modules' plain logic (`kprobes/logic.rs`), for `cargo test`: the very file
//! the modules compile, with `core` only.

#[allow(dead_code)]
#[path = "../../kprobes/logic.rs"]
mod logic;

#[cfg(test)]
mod tests {
    use super::logic::*;

    fn sin(family: u16, port: u16, addr: [u8; 4], len: usize) -> Vec<u8> {
        let mut b = vec![0u8; 16];
        b[..2].copy_from_slice(&family.to_ne_bytes());
        b[2..4].copy_from_slice(&port.to_be_bytes());
        b[4..8].copy_from_slice(&addr);
        b.truncate(len);
        b
    }

    #[test]
    fn decodes_inet_port_in_network_order() {
        assert_eq!(
            Sockaddr::decode(&sin(AF_INET, 49152, [127, 0, 0, 1], 16)),
            Sockaddr::Inet {
                addr: [127, 0, 0, 1],
                port: 49152
            }
        );
        assert_eq!(
            Sockaddr::decode(&sin(AF_INET, 0x1234, [0; 4], 16)).port(),
            Some(0x1234)
        );
    }

    #[test]
    fn decodes_inet6() {
        let mut b = vec![0u8; 28];
        b[..2].copy_from_slice(&AF_INET6.to_ne_bytes());
        b[2..4].copy_from_slice(&8080u16.to_be_bytes());
        // sin6_flowinfo, then sin6_addr ::1.
        b[4..8].copy_from_slice(&[9, 9, 9, 9]);
        b[23] = 1;
        let mut one = [0u8; 16];
        one[15] = 1;
        let want = Sockaddr::Inet6 {
            addr: one,
            port: 8080,
        };
        assert_eq!(Sockaddr::decode(&b), want);
        assert_eq!(Sockaddr::decode(&b[..24]), want);
        assert_eq!(want.peer().unwrap().to_string(), "[::1]:8080");
        assert_eq!(
            Sockaddr::decode(&b[..23]),
            Sockaddr::TooShort {
                family: Some(AF_INET6),
                len: 23
            }
        );
    }

    #[test]
    fn peers_print_as_the_kernel_would() {
        let v4 = Sockaddr::decode(&sin(AF_INET, 9, [127, 0, 0, 1], 16));
        assert_eq!(v4.peer().unwrap().to_string(), "127.0.0.1:9");
        let mut b = vec![0u8; 28];
        b[..2].copy_from_slice(&AF_INET6.to_ne_bytes());
        b[2..4].copy_from_slice(&443u16.to_be_bytes());
        b[8..24].copy_from_slice(&[
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x42,
        ]);
        let v6 = Sockaddr::decode(&b);
        assert_eq!(v6.peer().unwrap().to_string(), "[2001:db8::42]:443");
        assert_eq!(Sockaddr::Other { family: 1 }.peer(), None);
    }

    #[test]
    fn decoders_come_from_the_table_or_the_parameter() {
        assert_eq!(Decoder::select(b"auto", b"inet_bind"), Some(Decoder::Bind));
        assert_eq!(Decoder::select(b"auto", b"inet6_bind"), Some(Decoder::Bind));
        assert_eq!(
            Decoder::select(b"auto", b"tcp_v6_connect"),
            Some(Decoder::Connect)
        );
        // No decoder: raw, never another function's meaning.
        assert_eq!(Decoder::select(b"auto", b"vfs_read"), Some(Decoder::Raw));
        assert_eq!(Decoder::select(b"auto", b"inet_bin"), Some(Decoder::Raw));
        assert_eq!(Decoder::select(b"", b"__sys_bind"), Some(Decoder::Raw));
        // Named: whatever the function.
        assert_eq!(Decoder::select(b"bind", b"__sys_bind"), Some(Decoder::Bind));
        assert_eq!(Decoder::select(b"raw", b"inet_bind"), Some(Decoder::Raw));
        assert_eq!(Decoder::select(b"connect", b"x"), Some(Decoder::Connect));
        assert_eq!(Decoder::select(b"Bind", b"inet_bind"), None);
        assert_eq!(Decoder::select(b"sockaddr", b"inet_bind"), None);
        assert!(!Decoder::Raw.has_port() && Decoder::Bind.has_port());
        for (_, d) in Decoder::TABLE {
            assert_eq!(Decoder::select(d.name().as_bytes(), b"x"), Some(d));
        }
    }

    #[test]
    fn short_addresses_claim_no_port() {
        assert_eq!(
            Sockaddr::decode(&[]),
            Sockaddr::TooShort {
                family: None,
                len: 0
            }
        );
        assert_eq!(
            Sockaddr::decode(&[2]),
            Sockaddr::TooShort {
                family: None,
                len: 1
            }
        );
        assert_eq!(
            Sockaddr::decode(&sin(AF_INET, 80, [0; 4], 2)),
            Sockaddr::TooShort {
                family: Some(AF_INET),
                len: 2
            }
        );
        assert_eq!(Sockaddr::decode(&sin(AF_INET, 80, [0; 4], 15)).port(), None);
    }

    #[test]
    fn other_families_claim_no_port() {
        assert_eq!(
            Sockaddr::decode(&sin(1, 80, [0; 4], 16)),
            Sockaddr::Other { family: 1 }
        );
        assert_eq!(Sockaddr::decode(&sin(1, 80, [0; 4], 16)).port(), None);
    }

    #[test]
    fn unspec_is_inet_only_for_any_address() {
        // inet_bind's compatibility rule: AF_UNSPEC with INADDR_ANY binds as AF_INET.
        assert_eq!(
            Sockaddr::decode(&sin(AF_UNSPEC, 99, [0; 4], 16)),
            Sockaddr::Inet {
                addr: [0; 4],
                port: 99
            }
        );
        assert_eq!(
            Sockaddr::decode(&sin(AF_UNSPEC, 99, [127, 0, 0, 1], 16)),
            Sockaddr::Other { family: AF_UNSPEC }
        );
    }

    #[test]
    fn filters() {
        let all = Filter {
            pid: 0,
            comm: b"",
            port: 0,
        };
        assert!(all.task(5, |w| w == b"x") && all.port(None) && all.port(Some(1)));
        let f = Filter {
            pid: 42,
            comm: b"loadgen",
            port: 8080,
        };
        assert!(f.task(42, |w| w == b"loadgen"));
        assert!(!f.task(43, |w| w == b"loadgen"));
        assert!(!f.task(42, |w| w == b"loadge"));
        assert!(f.port(Some(8080)));
        assert!(!f.port(Some(8081)));
        assert!(
            !f.port(None),
            "with port= set, a bind without a port must not pass"
        );
    }

    #[test]
    fn comm_is_only_read_with_a_comm_filter() {
        let f = Filter {
            pid: 0,
            comm: b"",
            port: 0,
        };
        assert!(f.task(1, |_| unreachable!("comm read without comm=")));
    }

    #[test]
    fn ratelimit_passes_n_per_second_and_counts_the_rest() {
        let r = RateLimiter::new(5);
        let t0 = 10_000_000_000u64;
        let passed = (0..100)
            .filter(|i| r.check(|| t0 + i * 1000) != Verdict::Suppress)
            .count();
        assert_eq!(passed, 5);
        assert_eq!(r.suppressed(), 95);
        // Next window: the first event that passes carries the count of the dropped ones.
        assert_eq!(
            r.check(|| t0 + 1_000_000_000),
            Verdict::Pass { suppressed: 95 }
        );
        assert_eq!(
            r.check(|| t0 + 1_000_000_001),
            Verdict::Pass { suppressed: 0 }
        );
        assert_eq!(r.suppressed(), 95);
    }

    #[test]
    fn ratelimit_zero_is_unlimited() {
        let r = RateLimiter::new(0);
        assert!((0..10_000).all(|i| r.check(|| i) == Verdict::Pass { suppressed: 0 }));
        assert_eq!(r.suppressed(), 0);
    }

    #[test]
    fn log2_buckets_cover_every_value_once() {
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(1), 1);
        assert_eq!(bucket(2), 2);
        assert_eq!(bucket(3), 2);
        assert_eq!(bucket(4), 3);
        assert_eq!(bucket(u64::MAX), 64);
        for v in [0u64, 1, 2, 3, 7, 8, 1000, 4096, 65535, 1 << 40, u64::MAX] {
            let (lo, hi) = bucket_range(bucket(v));
            assert!(lo <= v && v <= hi, "{v} not in bucket {lo}..={hi}");
        }
        for i in 1..64 {
            assert_eq!(bucket_range(i).1 + 1, bucket_range(i + 1).0);
        }
    }

    #[test]
    fn histogram_rows_span_first_to_last_nonempty_bucket() {
        let mut c = [0u64; BUCKETS];
        c[bucket(3000)] = 10;
        c[bucket(70000)] = 5;
        let rows: Vec<String> = hist_rows(&c).map(|r| r.to_string()).collect();
        assert_eq!(rows.len(), bucket(70000) - bucket(3000) + 1);
        assert_eq!(
            rows[0],
            format!(
                "{:>12} -> {:<12} : {:<8} |{}|",
                2048,
                4095,
                10,
                "*".repeat(40)
            )
        );
        assert!(rows.last().unwrap().contains(&format!(
            ": {:<8} |{}{}|",
            5,
            "*".repeat(20),
            " ".repeat(20)
        )));
        assert_eq!(hist_rows(&[0u64; BUCKETS]).count(), 0);
    }

    #[test]
    fn tally_slots() {
        assert_eq!(tally_slot(0), 0);
        assert_eq!(tally_slot(-98), 98);
        assert_eq!(tally_slot(-133), 133);
        assert_eq!(tally_slot(-134), TALLY_SLOTS - 1);
        assert_eq!(tally_slot(7), TALLY_SLOTS - 1);
    }

    #[test]
    fn tally_of_a_register_tests_the_type_s_bits() {
        let slot = |t: RetType, raw: u64| {
            let mut got = None;
            t.tally(raw, |s| got = Some(s));
            got.unwrap()
        };
        // The upper half of an int function's register is not its value.
        assert_eq!(slot(RetType::INT, 0xdead_0000_0000_0000), 0);
        assert_eq!(slot(RetType::LONG, 0xdead_0000_0000_0000), TALLY_SLOTS - 1);
        assert_eq!(slot(RetType::INT, 0x0000_0000_ffff_ff9e), 98);
        assert_eq!(slot(RetType::LONG, 0x0000_0000_ffff_ff9e), TALLY_SLOTS - 1);
        assert_eq!(slot(RetType::LONG, -98i64 as u64), 98);
        assert_eq!(slot(RetType::PTR, 0), 0);
        assert_eq!(slot(RetType::ULONG, 1), TALLY_SLOTS - 1);
    }

    #[test]
    fn int_return_values_use_the_low_32_bits() {
        // inet_bind's -98 in rax: the upper half is not defined for an int function.
        let raw = 0x0000_0000_ffff_ff9eu64;
        assert_eq!(RetType::INT.value(raw).to_string(), "-98");
        assert_eq!(RetType::LONG.value(raw).to_string(), "4294967198");
        assert_eq!(RetType::LONG.value(-98i64 as u64).to_string(), "-98");
        assert_eq!(
            RetType::ULONG.value(u64::MAX).to_string(),
            "18446744073709551615"
        );
        assert_eq!(
            RetType::PTR.value(0xffff_8880_0000_1000).to_string(),
            "0xffff888000001000"
        );
        // The tally's signed view agrees with what is printed.
        assert_eq!(RetType::INT.signed(raw), -98);
        assert_eq!(RetType::INT.signed(0xdead_0000_0000_0000), 0);
        assert_eq!(RetType::LONG.signed(raw), 4294967198);
        assert_eq!(RetType::ULONG.signed(u64::MAX), -1);
        assert_eq!(RetType::parse(b"int"), Some(RetType::INT));
        assert_eq!(RetType::parse(b"char"), None);
    }
}
