//! Notification signatures: millpond's own RSA key (1024 bits by default, 2048 on request, see
//! [`KeyBits`]) and self-signed X.509 certificate, the SNS canonical strings, and PKCS#1 v1.5
//! signing with SHA1 (SignatureVersion 1) or SHA256 (SignatureVersion 2). Standard SNS message
//! validators accept the signatures when told to trust the SigningCertURL millpond serves
//! ([`Signer::cert_pem`]).
//!
//! The RSA arithmetic is written here: a general bignum on `Vec<u64>` (Miller–Rabin key
//! generation, key setup, verification, and the reference signer), a fixed-size one on stack
//! arrays for the CRT private operation of 1024- and 2048-bit keys (signing is the SNS fan-out's
//! bottleneck, see `benches/sign.rs`), and just enough DER for one certificate. Digests come
//! from the `sha1`/`sha2` crates. The key is made on first use and kept in
//! `<data_dir>/sns/signing-key.bin` (debug builds use fixed development keys instead, see
//! `Key::fresh_primes`); it is a local broker's key, not a secret worth an HSM.
//!
//! Keys are multi-prime RSA (RFC 8017 §3.2): four primes, so the private operation is four
//! exponentiations modulo quarter-size primes instead of two modulo half-size ones, about a
//! third of the work (`benches/sign.rs`: RSA-1024 from ~73 to ~26 µs, RSA-2048 from ~540 to
//! ~150 µs here; with the Montgomery steps inlined into the exponentiation, ~17 and ~120 µs).
//! A verifier sees only the modulus and e = 65537, exactly as for two primes.
//! What is given up is factoring hardness (four 256-bit factors are within reach of a large
//! ECM effort); for a local broker's notification key that is no loss. Two-prime keys made
//! before still load and sign on the same fast path.

use std::path::Path;
use std::sync::OnceLock;

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{ServiceError, ServiceResult};

const E: u64 = 65_537;

// Fixed development keys of both sizes for debug builds (see `Key::fresh_primes`): four primes
// each, as release builds make them.
#[cfg(debug_assertions)]
const DEV_1024: [&str; MAX_PRIMES] = [
    "fd42c6e3609515d8d371fffa08d911cd4081e7552fc46207e291fdc2ae179503",
    "fb56a6f8e09974c105112eda8ccfa2f8f3598cff50edbd305265b1bc5750d159",
    "ea2487b155b6e275849112925aad69c2137803b6a49ea0fa08d5d7f767e8ff4d",
    "e58ebf8e6e3694a85cad369d6afb1e6a923bfd4187d115efa52a5ecf586eda57",
];
#[cfg(debug_assertions)]
const DEV_2048: [&str; MAX_PRIMES] = [
    "e4f4c163efa1502f9a70da32e9723037cb61c1f0806d95bf7a13e80a747b8bd368b103e25000117d0e00fa6f51e210a28c3872dea47e4b1cc871bb848ab816cf",
    "f4e8267461e7f97ba8f1a128cb302f8bdecc5fabb0525be8ac2959237fd9c069a14963e9c64801d7160287940ea78eebb32c7061611d9717feb0413c38383fb3",
    "eb9a9b2ef532bec9a1acc1186119264d98c65a3d6f13faa69339942e0ba47fe9e30a0b61262100d7ac2f340dc86b75367be1f81d54fb4d6d2f12cbcda6b4ce89",
    "eba5748bc3b91b8e688b7dd38c464b960c347d06f9636ce44928b4037959c1147d8eccce40e42418adf8f266b53365e251b7512212e32cf2cb593a18215fda95",
];
const KEY_FILE: &str = "signing-key.bin";

/// Smallest modulus a key file may hold (see [`Key::check_primes`]).
const MIN_MODULUS_BITS: usize = 512;

/// The size of the RSA key a data directory gets when it has none yet. 1024 bits by default:
/// a signature costs about a seventh of a 2048-bit one, and one signature per publish is a
/// large part of SNS fan-out's cost; every standard SNS message validator accepts a 1024-bit
/// key. 2048 matches the size of AWS's own SNS keys. An existing key file is used whatever
/// its size.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KeyBits {
    #[default]
    Rsa1024,
    Rsa2048,
}

impl KeyBits {
    /// Bits of the modulus.
    pub fn bits(self) -> usize {
        match self {
            KeyBits::Rsa1024 => 1024,
            KeyBits::Rsa2048 => 2048,
        }
    }
}

impl std::str::FromStr for KeyBits {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "1024" => Ok(KeyBits::Rsa1024),
            "2048" => Ok(KeyBits::Rsa2048),
            other => Err(format!(
                "the SNS signing key must be 1024 or 2048 bits, not {other:?}"
            )),
        }
    }
}

impl std::fmt::Display for KeyBits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.bits())
    }
}

// ---------------------------------------------------------------------------------------------
// Bignums: little-endian u64 limbs, normalized (no high zero limbs; zero is empty).

type Limbs = Vec<u64>;

fn norm(mut a: Limbs) -> Limbs {
    while a.last() == Some(&0) {
        a.pop();
    }
    a
}

fn from_be(bytes: &[u8]) -> Limbs {
    let mut out = Vec::with_capacity(bytes.len() / 8 + 1);
    for chunk in bytes.rchunks(8) {
        let mut v = 0u64;
        for b in chunk {
            v = (v << 8) | *b as u64;
        }
        out.push(v);
    }
    norm(out)
}

/// Big-endian bytes, left-padded to `len` (or minimal when `len` is 0).
fn to_be(a: &[u64], len: usize) -> Vec<u8> {
    let mut out: Vec<u8> = a.iter().rev().flat_map(|l| l.to_be_bytes()).collect();
    let first = out.iter().position(|b| *b != 0).unwrap_or(out.len());
    out.drain(..first);
    if out.len() < len {
        let mut padded = vec![0u8; len - out.len()];
        padded.extend(out);
        out = padded;
    }
    out
}

fn cmp(a: &[u64], b: &[u64]) -> std::cmp::Ordering {
    let eff = |x: &[u64]| x.len() - x.iter().rev().take_while(|l| **l == 0).count();
    let (la, lb) = (eff(a), eff(b));
    la.cmp(&lb)
        .then_with(|| a[..la].iter().rev().cmp(b[..lb].iter().rev()))
}

fn add(a: &[u64], b: &[u64]) -> Limbs {
    let n = a.len().max(b.len());
    let mut out = Vec::with_capacity(n + 1);
    let mut carry = 0u128;
    for i in 0..n {
        let s = *a.get(i).unwrap_or(&0) as u128 + *b.get(i).unwrap_or(&0) as u128 + carry;
        out.push(s as u64);
        carry = s >> 64;
    }
    out.push(carry as u64);
    norm(out)
}

/// `a - b`, requires `a >= b`.
fn sub(a: &[u64], b: &[u64]) -> Limbs {
    let mut out = Vec::with_capacity(a.len());
    let mut borrow = 0u64;
    for (i, &ai) in a.iter().enumerate() {
        let (d1, b1) = ai.overflowing_sub(*b.get(i).unwrap_or(&0));
        let (d2, b2) = d1.overflowing_sub(borrow);
        out.push(d2);
        borrow = (b1 || b2) as u64;
    }
    norm(out)
}

fn mul(a: &[u64], b: &[u64]) -> Limbs {
    let mut out = vec![0u64; a.len() + b.len() + 1];
    for (i, &x) in a.iter().enumerate() {
        let mut carry = 0u128;
        for (j, &y) in b.iter().enumerate() {
            let t = out[i + j] as u128 + x as u128 * y as u128 + carry;
            out[i + j] = t as u64;
            carry = t >> 64;
        }
        let mut k = i + b.len();
        while carry > 0 {
            let t = out[k] as u128 + carry;
            out[k] = t as u64;
            carry = t >> 64;
            k += 1;
        }
    }
    norm(out)
}

fn bits(a: &[u64]) -> usize {
    match a.iter().rposition(|l| *l != 0) {
        None => 0,
        Some(top) => top * 64 + (64 - a[top].leading_zeros() as usize),
    }
}

fn bit(a: &[u64], i: usize) -> bool {
    a.get(i / 64).is_some_and(|l| (l >> (i % 64)) & 1 == 1)
}

/// `a mod m` by binary long division (only used off the hot path).
fn rem(a: &[u64], m: &[u64]) -> Limbs {
    let mut r: Limbs = Vec::new();
    for i in (0..bits(a)).rev() {
        // r = 2r + bit
        let mut carry = bit(a, i) as u64;
        for l in r.iter_mut() {
            let next = *l >> 63;
            *l = (*l << 1) | carry;
            carry = next;
        }
        if carry > 0 {
            r.push(carry);
        }
        if cmp(&r, m) != std::cmp::Ordering::Less {
            r = sub(&r, m);
        }
    }
    norm(r)
}

fn rem_small(a: &[u64], m: u64) -> u64 {
    a.iter()
        .rev()
        .fold(0u128, |r, l| ((r << 64) | *l as u128) % m as u128) as u64
}

/// `a / m` for a small divisor, exact or not.
fn div_small(a: &[u64], m: u64) -> Limbs {
    let mut out = vec![0u64; a.len()];
    let mut r = 0u128;
    for i in (0..a.len()).rev() {
        let cur = (r << 64) | a[i] as u128;
        out[i] = (cur / m as u128) as u64;
        r = cur % m as u128;
    }
    norm(out)
}

/// Montgomery arithmetic modulo an odd `n` of `s` limbs. Values in and out of [`Mont::mul`]
/// are exactly `s` limbs (not normalized) and below `n`.
struct Mont {
    n: Limbs,
    /// -n^-1 mod 2^64
    ninv: u64,
    /// R^2 mod n, R = 2^(64·s), padded to `s` limbs.
    rr: Limbs,
}

impl Mont {
    fn new(n: &[u64]) -> Mont {
        let n = norm(n.to_vec());
        let mut inv = 1u64;
        for _ in 0..6 {
            inv = inv.wrapping_mul(2u64.wrapping_sub(n[0].wrapping_mul(inv)));
        }
        let mut r2 = vec![0u64; 2 * n.len()];
        r2.push(1);
        let mut rr = rem(&r2, &n);
        rr.resize(n.len(), 0);
        Mont {
            ninv: inv.wrapping_neg(),
            rr,
            n,
        }
    }

    fn pad(&self, a: &[u64]) -> Limbs {
        let mut v = norm(a.to_vec());
        if v.len() > self.n.len() {
            v = rem(&v, &self.n);
        }
        v.resize(self.n.len(), 0);
        v
    }

    /// a·b·R⁻¹ mod n (CIOS). Needs a·b < n·R, which holds for a, b < n or a < R, b < n.
    fn mul(&self, a: &[u64], b: &[u64]) -> Limbs {
        let s = self.n.len();
        let n = &self.n;
        let mut t = vec![0u64; s + 2];
        for &bi in &b[..s] {
            let mut c = 0u128;
            for (tj, &aj) in t.iter_mut().zip(&a[..s]) {
                let x = *tj as u128 + aj as u128 * bi as u128 + c;
                *tj = x as u64;
                c = x >> 64;
            }
            let x = t[s] as u128 + c;
            t[s] = x as u64;
            t[s + 1] = (x >> 64) as u64;
            let m = t[0].wrapping_mul(self.ninv);
            let x = t[0] as u128 + m as u128 * n[0] as u128;
            let mut c = x >> 64;
            for j in 1..s {
                let x = t[j] as u128 + m as u128 * n[j] as u128 + c;
                t[j - 1] = x as u64;
                c = x >> 64;
            }
            let x = t[s] as u128 + c;
            t[s - 1] = x as u64;
            t[s] = t[s + 1] + (x >> 64) as u64;
        }
        let top = t[s];
        t.truncate(s);
        if top != 0 || cmp(&t, n) != std::cmp::Ordering::Less {
            let mut borrow = 0u64;
            for (tj, &nj) in t.iter_mut().zip(n) {
                let (d1, b1) = tj.overflowing_sub(nj);
                let (d2, b2) = d1.overflowing_sub(borrow);
                *tj = d2;
                borrow = (b1 || b2) as u64;
            }
        }
        t
    }

    /// a²·R⁻¹ mod n: a squaring (each cross product computed once) then a Montgomery
    /// reduction, about a quarter cheaper than [`Mont::mul`] of `a` by itself.
    fn sqr(&self, a: &[u64]) -> Limbs {
        let s = self.n.len();
        let mut t = vec![0u64; 2 * s + 1];
        for i in 0..s {
            let ai = a[i] as u128;
            let mut c = 0u128;
            for j in (i + 1)..s {
                let x = t[i + j] as u128 + ai * a[j] as u128 + c;
                t[i + j] = x as u64;
                c = x >> 64;
            }
            t[i + s] = c as u64;
        }
        let mut carry = 0u64;
        for x in t.iter_mut() {
            let next = *x >> 63;
            *x = (*x << 1) | carry;
            carry = next;
        }
        let mut c = 0u128;
        for i in 0..s {
            let sq = a[i] as u128 * a[i] as u128;
            let x = t[2 * i] as u128 + (sq as u64) as u128 + c;
            t[2 * i] = x as u64;
            c = x >> 64;
            let x = t[2 * i + 1] as u128 + (sq >> 64) + c;
            t[2 * i + 1] = x as u64;
            c = x >> 64;
        }
        self.redc(t)
    }

    /// t·R⁻¹ mod n for t < n·R given as 2s+1 limbs (the last one zero).
    fn redc(&self, mut t: Vec<u64>) -> Limbs {
        let s = self.n.len();
        let n = &self.n;
        for i in 0..s {
            let m = t[i].wrapping_mul(self.ninv);
            let mut c = 0u128;
            for j in 0..s {
                let x = t[i + j] as u128 + m as u128 * n[j] as u128 + c;
                t[i + j] = x as u64;
                c = x >> 64;
            }
            let mut k = i + s;
            while c != 0 && k < t.len() {
                let x = t[k] as u128 + c;
                t[k] = x as u64;
                c = x >> 64;
                k += 1;
            }
        }
        let mut out = t.split_off(s);
        if out[s] != 0 || cmp(&out[..s], n) != std::cmp::Ordering::Less {
            let mut borrow = 0u64;
            for (j, oj) in out.iter_mut().enumerate() {
                let nj = n.get(j).copied().unwrap_or(0);
                let (d1, b1) = oj.overflowing_sub(nj);
                let (d2, b2) = d1.overflowing_sub(borrow);
                *oj = d2;
                borrow = (b1 || b2) as u64;
            }
        }
        out.truncate(s);
        out
    }

    /// a·R mod n, for any a < R (or any a, reduced first).
    fn enter(&self, a: &[u64]) -> Limbs {
        self.mul(&self.pad(a), &self.rr)
    }

    fn leave(&self, a: &[u64]) -> Limbs {
        let mut one = vec![0u64; self.n.len()];
        one[0] = 1;
        norm(self.mul(a, &one))
    }

    /// `base^exp mod n` with a fixed 4-bit window.
    fn pow(&self, base: &[u64], exp: &[u64]) -> Limbs {
        let mut table = Vec::with_capacity(16);
        table.push(self.enter(&[1]));
        let b = self.enter(base);
        for i in 1..16 {
            let next = self.mul(&table[i - 1], &b);
            table.push(next);
        }
        let mut x = table[0].clone();
        let nbits = bits(exp);
        let mut i = nbits.div_ceil(4);
        while i > 0 {
            i -= 1;
            for _ in 0..4 {
                x = self.sqr(&x);
            }
            let w = (0..4).fold(0usize, |acc, k| acc | ((bit(exp, 4 * i + k) as usize) << k));
            if w != 0 {
                x = self.mul(&x, &table[w]);
            }
        }
        self.leave(&x)
    }
}

// ---------------------------------------------------------------------------------------------
// The signing hot path: Montgomery arithmetic on stack arrays of exactly N limbs (N = 4 for the
// 256-bit primes of an RSA-1024 key, 8 for the 512-bit ones of an RSA-2048 key or the halves of
// a two-prime RSA-1024 key, 16 for those of a two-prime RSA-2048 key). No allocation inside
// mul/sqr/redc/pow, loops of constant length the compiler unrolls, a fused multiply-reduce (FIOS: two independent carry
// chains per step), a dedicated squaring, and sliding-window exponentiation. Not constant-time:
// this is a local broker's notification key, and speed is what the SNS fan-out needs.

/// Largest N [`Fixed`] is instantiated with; sizes the double-width scratch of squaring.
const MAX_FIXED: usize = 16;

/// Sliding-window width: 16 odd powers in the table, ~1/6 of the exponent bits cost a multiply.
const WINDOW: usize = 5;

/// Most primes a key may have: RSA-1024 and RSA-2048 keys are made with four (see [`KeyBits`]).
const MAX_PRIMES: usize = 4;

/// Montgomery arithmetic modulo an odd N-limb `n` whose top limb is non-zero. Values are
/// `[u64; N]` little-endian and below `n` unless a doc says otherwise.
#[derive(Clone)]
struct Fixed<const N: usize> {
    n: [u64; N],
    /// -n⁻¹ mod 2^64
    ninv: u64,
    /// R² mod n, R = 2^(64·N)
    rr: [u64; N],
}

fn to_fixed<const N: usize>(a: &[u64]) -> Option<[u64; N]> {
    let a = &a[..a.len() - a.iter().rev().take_while(|l| **l == 0).count()];
    if a.len() > N {
        return None;
    }
    let mut out = [0u64; N];
    out[..a.len()].copy_from_slice(a);
    Some(out)
}

/// `a - b` in place, returning the borrow.
#[inline(always)]
fn sub_in_place<const N: usize>(a: &mut [u64; N], b: &[u64; N]) -> bool {
    let mut borrow = false;
    for j in 0..N {
        let (d1, b1) = a[j].overflowing_sub(b[j]);
        let (d2, b2) = d1.overflowing_sub(borrow as u64);
        a[j] = d2;
        borrow = b1 | b2;
    }
    borrow
}

/// `a + b` in place, returning the carry.
#[inline(always)]
fn add_in_place<const N: usize>(a: &mut [u64; N], b: &[u64; N]) -> bool {
    let mut carry = false;
    for j in 0..N {
        let (s1, o1) = a[j].overflowing_add(b[j]);
        let (s2, o2) = s1.overflowing_add(carry as u64);
        a[j] = s2;
        carry = o1 | o2;
    }
    carry
}

/// `a >= b`
#[inline(always)]
fn ge<const N: usize>(a: &[u64; N], b: &[u64; N]) -> bool {
    for j in (0..N).rev() {
        if a[j] != b[j] {
            return a[j] > b[j];
        }
    }
    true
}

impl<const N: usize> Fixed<N> {
    /// `None` unless `n` is odd and exactly N limbs long.
    fn new(n: &[u64]) -> Option<Self> {
        const { assert!(N >= 1 && N <= MAX_FIXED) };
        let n_arr = to_fixed::<N>(n)?;
        if n_arr[N - 1] == 0 || n_arr[0] & 1 == 0 {
            return None;
        }
        let slow = Mont::new(n);
        let rr = to_fixed::<N>(&slow.rr)?;
        Some(Fixed {
            n: n_arr,
            ninv: slow.ninv,
            rr,
        })
    }

    /// Subtracts n once if `hi` (the bit above the N limbs) is set or `t >= n`.
    #[inline(always)]
    fn finish(&self, mut t: [u64; N], hi: bool) -> [u64; N] {
        if hi || ge(&t, &self.n) {
            sub_in_place(&mut t, &self.n);
        }
        t
    }

    /// a·b·R⁻¹ mod n (FIOS). Needs a·b < n·R: a, b < n, or one of them < R and the other < n.
    ///
    /// `mul`, `sqr` and `redc` are always inlined: in [`Fixed::pow`]'s ~300 steps per prime
    /// that saves a call each and lets LLVM unroll the limb loops for the key's N, ~30% of a
    /// signature (`benches/sign.rs`, RSA-1024: 24 → 17 µs).
    #[inline(always)]
    fn mul(&self, a: &[u64; N], b: &[u64; N]) -> [u64; N] {
        let n = &self.n;
        let mut t = [0u64; N];
        let mut top = 0u64;
        for &bi in b.iter() {
            let x = a[0] as u128 * bi as u128 + t[0] as u128;
            let mut c1 = (x >> 64) as u64;
            let m = (x as u64).wrapping_mul(self.ninv);
            let y = m as u128 * n[0] as u128 + (x as u64) as u128;
            let mut c2 = (y >> 64) as u64;
            for j in 1..N {
                let x = a[j] as u128 * bi as u128 + t[j] as u128 + c1 as u128;
                c1 = (x >> 64) as u64;
                let y = m as u128 * n[j] as u128 + (x as u64) as u128 + c2 as u128;
                c2 = (y >> 64) as u64;
                t[j - 1] = y as u64;
            }
            let z = top as u128 + c1 as u128 + c2 as u128;
            t[N - 1] = z as u64;
            top = (z >> 64) as u64;
        }
        self.finish(t, top != 0)
    }

    /// a²·R⁻¹ mod n: each cross product once, doubled, then [`Fixed::redc`].
    #[inline(always)]
    fn sqr(&self, a: &[u64; N]) -> [u64; N] {
        let mut t = [0u64; 2 * MAX_FIXED];
        for i in 0..N {
            let mut c = 0u64;
            for j in (i + 1)..N {
                let x = a[i] as u128 * a[j] as u128 + t[i + j] as u128 + c as u128;
                t[i + j] = x as u64;
                c = (x >> 64) as u64;
            }
            t[i + N] = c;
        }
        // Double the cross products and add the squares, in one pass.
        let mut shift_in = 0u64;
        let mut c = 0u64;
        for i in 0..N {
            let lo = t[2 * i];
            let hi = t[2 * i + 1];
            let d_lo = (lo << 1) | shift_in;
            let d_hi = (hi << 1) | (lo >> 63);
            shift_in = hi >> 63;
            let sq = a[i] as u128 * a[i] as u128;
            let x = d_lo as u128 + (sq as u64) as u128 + c as u128;
            t[2 * i] = x as u64;
            let y = d_hi as u128 + (sq >> 64) + (x >> 64);
            t[2 * i + 1] = y as u64;
            c = (y >> 64) as u64;
        }
        self.redc(&mut t)
    }

    /// t·R⁻¹ mod n for a double-width t < n·R (limbs 0..2N of `t`, which it overwrites).
    #[inline(always)]
    fn redc(&self, t: &mut [u64; 2 * MAX_FIXED]) -> [u64; N] {
        let n = &self.n;
        let mut carry = 0u64;
        for i in 0..N {
            let m = t[i].wrapping_mul(self.ninv);
            let mut c = 0u64;
            for j in 0..N {
                let x = m as u128 * n[j] as u128 + t[i + j] as u128 + c as u128;
                t[i + j] = x as u64;
                c = (x >> 64) as u64;
            }
            // The carry out of limb i+N is owed to limb i+N+1, which the next row adds.
            let z = t[i + N] as u128 + c as u128 + carry as u128;
            t[i + N] = z as u64;
            carry = (z >> 64) as u64;
        }
        let mut out = [0u64; N];
        out.copy_from_slice(&t[N..2 * N]);
        self.finish(out, carry != 0)
    }

    /// `a + b mod n`.
    #[inline]
    fn add(&self, a: &[u64; N], b: &[u64; N]) -> [u64; N] {
        let mut t = *a;
        let carry = add_in_place(&mut t, b);
        self.finish(t, carry)
    }

    /// `a - b mod n`.
    #[inline]
    fn sub(&self, a: &[u64; N], b: &[u64; N]) -> [u64; N] {
        let mut t = *a;
        if sub_in_place(&mut t, b) {
            // Wrapped below zero: adding n back brings it into [0, n) (the carry out is the
            // wrap's borrow, cancelled).
            add_in_place(&mut t, &self.n);
        }
        t
    }

    /// Any N-limb value mod n, for an n with its top bit set (every N-limb value is below 2n).
    #[inline]
    fn below(&self, a: [u64; N]) -> [u64; N] {
        self.finish(a, false)
    }

    /// Montgomery form (x·R mod n) of x given as little-endian limbs of any length: Horner
    /// over N-limb chunks from the top, each step x ← x·R + chunk.
    fn enter_long(&self, x: &[u64]) -> [u64; N] {
        let mut acc = [0u64; N];
        for chunk in x.chunks(N).rev() {
            let mut limbs = [0u64; N];
            limbs[..chunk.len()].copy_from_slice(chunk);
            // acc·R² ·R⁻¹ and chunk·R²·R⁻¹: both products are below n·R.
            acc = self.add(&self.mul(&acc, &self.rr), &self.mul(&limbs, &self.rr));
        }
        acc
    }

    /// Out of Montgomery form.
    fn leave(&self, x: &[u64; N]) -> [u64; N] {
        let mut one = [0u64; N];
        one[0] = 1;
        self.mul(x, &one)
    }

    /// `base^exp` for `base` in Montgomery form, result in Montgomery form; left-to-right
    /// sliding window over the odd powers base, base³, …, base^(2^WINDOW − 1).
    fn pow(&self, base: &[u64; N], exp: &[u64]) -> [u64; N] {
        let mut table = [[0u64; N]; 1 << (WINDOW - 1)];
        table[0] = *base;
        let b2 = self.sqr(base);
        for i in 1..table.len() {
            table[i] = self.mul(&table[i - 1], &b2);
        }
        let bit = |i: usize| (exp[i / 64] >> (i % 64)) & 1;
        let mut i = bits(exp);
        // 1 in Montgomery form is R mod n = REDC(R²).
        let mut x = self.leave(&self.rr);
        let mut started = false;
        while i > 0 {
            if bit(i - 1) == 0 {
                if started {
                    x = self.sqr(&x);
                }
                i -= 1;
                continue;
            }
            // The longest window of at most WINDOW bits ending in a 1, from bit i-1 down.
            let lo = i.saturating_sub(WINDOW);
            let mut end = lo;
            while bit(end) == 0 {
                end += 1;
            }
            let mut w = 0usize;
            for k in (end..i).rev() {
                w = (w << 1) | bit(k) as usize;
            }
            if started {
                for _ in end..i {
                    x = self.sqr(&x);
                }
                x = self.mul(&x, &table[w >> 1]);
            } else {
                x = table[w >> 1];
                started = true;
            }
            i = end;
        }
        x
    }
}

/// One prime of a [`FastCrt`] key, with what Garner's recombination needs of it.
struct FastPrime<const N: usize> {
    m: Fixed<N>,
    /// d mod (r − 1)
    d: [u64; N],
    /// (r_0⋯r_{i−1})⁻¹ mod r_i in Montgomery form (unused for the first prime).
    coeff: [u64; N],
    /// r_j mod r_i in Montgomery form for each earlier prime j.
    lower: [[u64; N]; MAX_PRIMES],
}

/// The CRT private key on [`Fixed`] arithmetic: 2 to [`MAX_PRIMES`] primes of exactly N limbs
/// each, every one with its top bit set.
struct FastCrt<const N: usize> {
    primes: Vec<FastPrime<N>>,
}

impl<const N: usize> FastCrt<N> {
    fn new(parts: &[Prime]) -> Option<Self> {
        if !(2..=MAX_PRIMES).contains(&parts.len()) || parts.len() * N > 2 * MAX_FIXED {
            return None;
        }
        let mut primes = Vec::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            let m = Fixed::<N>::new(&part.r)?;
            if m.n[N - 1] >> 63 == 0 {
                return None;
            }
            let mut lower = [[0u64; N]; MAX_PRIMES];
            for (l, earlier) in lower.iter_mut().zip(&parts[..i]) {
                *l = m.mul(&to_fixed(&rem(&earlier.r, &part.r))?, &m.rr);
            }
            primes.push(FastPrime {
                d: to_fixed(&part.d)?,
                coeff: m.mul(&to_fixed(&part.coeff)?, &m.rr),
                lower,
                m,
            });
        }
        Some(FastCrt { primes })
    }

    /// `c^d mod n` for `c` < n given as little-endian limbs; `None` if `c` is too long.
    ///
    /// Garner's algorithm: with m_i = c^(d mod (r_i − 1)) mod r_i, the result is
    /// v_0 + v_1·r_0 + v_2·r_0·r_1 + …, where each v_i < r_i is found mod r_i alone.
    fn private(&self, c: &[u64]) -> Option<[u64; 2 * MAX_FIXED]> {
        let u = self.primes.len();
        let c = &c[..c.len() - c.iter().rev().take_while(|l| **l == 0).count()];
        if c.len() > u * N {
            return None;
        }
        let mut v = [[0u64; N]; MAX_PRIMES];
        for (i, p) in self.primes.iter().enumerate() {
            let f = &p.m;
            let mi = f.leave(&f.pow(&f.enter_long(c), &p.d));
            if i == 0 {
                v[0] = mi;
                continue;
            }
            // y = (v_0 + v_1·r_0 + … + v_{i−1}·r_0⋯r_{i−2}) mod r_i, by Horner.
            let mut y = f.below(v[i - 1]);
            for j in (0..i - 1).rev() {
                y = f.add(&f.mul(&y, &p.lower[j]), &f.below(v[j]));
            }
            v[i] = f.mul(&f.sub(&mi, &y), &p.coeff);
        }
        // x = v_0 + r_0·(v_1 + r_1·(v_2 + …)): below the product of the primes at each step.
        let mut x = [0u64; 2 * MAX_FIXED];
        x[..N].copy_from_slice(&v[u - 1]);
        let mut len = N;
        for j in (0..u - 1).rev() {
            let r = &self.primes[j].m.n;
            let mut next = [0u64; 2 * MAX_FIXED];
            next[..N].copy_from_slice(&v[j]);
            for a in 0..len {
                let mut carry = 0u64;
                for b in 0..N {
                    let t = x[a] as u128 * r[b] as u128 + next[a + b] as u128 + carry as u128;
                    next[a + b] = t as u64;
                    carry = (t >> 64) as u64;
                }
                let mut k = a + N;
                while carry != 0 && k < next.len() {
                    let t = next[k] as u128 + carry as u128;
                    next[k] = t as u64;
                    carry = (t >> 64) as u64;
                    k += 1;
                }
            }
            x = next;
            len += N;
        }
        Some(x)
    }
}

/// [`FastCrt`] at the limb count of the key's primes: 4 (the 256-bit primes of a 4-prime
/// RSA-1024 key), 8 (4-prime RSA-2048, or 2-prime RSA-1024 from before multi-prime keys) or
/// 16 (2-prime RSA-2048).
enum FastKey {
    Limbs4(FastCrt<4>),
    Limbs8(FastCrt<8>),
    Limbs16(FastCrt<16>),
}

impl FastKey {
    /// `None` for primes of other or unequal sizes (those keys sign on the general arithmetic).
    fn new(parts: &[Prime]) -> Option<Self> {
        let limbs_of = |p: &Prime| bits(&p.r).div_ceil(64);
        let limbs = limbs_of(parts.first()?);
        if parts.iter().any(|p| limbs_of(p) != limbs) {
            return None;
        }
        match limbs {
            4 => FastCrt::new(parts).map(FastKey::Limbs4),
            8 => FastCrt::new(parts).map(FastKey::Limbs8),
            16 => FastCrt::new(parts).map(FastKey::Limbs16),
            _ => None,
        }
    }

    fn private(&self, m: &[u64]) -> Option<[u64; 2 * MAX_FIXED]> {
        match self {
            FastKey::Limbs4(k) => k.private(m),
            FastKey::Limbs8(k) => k.private(m),
            FastKey::Limbs16(k) => k.private(m),
        }
    }
}

#[cfg_attr(debug_assertions, allow(dead_code))]
fn random_bytes(n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 16);
    while out.len() < n {
        // v4 UUIDs carry 122 random bits from the OS generator.
        out.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    }
    out.truncate(n);
    out
}

#[cfg_attr(debug_assertions, allow(dead_code))]
const SMALL_PRIMES: [u64; 54] = [
    3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97,
    101, 103, 107, 109, 113, 127, 131, 137, 139, 149, 151, 157, 163, 167, 173, 179, 181, 191, 193,
    197, 199, 211, 223, 227, 229, 233, 239, 241, 251, 257,
];

#[cfg_attr(debug_assertions, allow(dead_code))]
fn probably_prime(n: &[u64], rounds: usize) -> bool {
    if SMALL_PRIMES.iter().any(|p| rem_small(n, *p) == 0) {
        return false;
    }
    let m = Mont::new(n);
    let n_minus_1 = sub(n, &[1]);
    let mut d = n_minus_1.clone();
    let mut r = 0;
    while !bit(&d, 0) {
        d = div_small(&d, 2);
        r += 1;
    }
    let one = m.enter(&[1]);
    let minus_one = m.enter(&n_minus_1);
    'witness: for k in 0..rounds {
        let a = if let Some(&small) = SMALL_PRIMES.get(k).filter(|_| k < 8) {
            vec![small]
        } else {
            rem(&from_be(&random_bytes(n.len() * 8)), &n_minus_1)
        };
        if bits(&a) < 2 {
            continue;
        }
        let mut x = m.enter(&m.pow(&a, &d));
        if x == one || x == minus_one {
            continue;
        }
        for _ in 1..r {
            x = m.sqr(&x);
            if x == minus_one {
                continue 'witness;
            }
        }
        return false;
    }
    true
}

#[cfg_attr(debug_assertions, allow(dead_code))]
fn random_prime(bits_len: usize) -> Limbs {
    loop {
        let mut b = random_bytes(bits_len / 8);
        // Top three bits: each prime is at least 7/8 of 2^bits_len, so a product of up to four
        // of them has exactly their total bit count ((7/8)⁴ > 1/2).
        b[0] |= 0xE0;
        let last = b.len() - 1;
        b[last] |= 1;
        let p = from_be(&b);
        if rem_small(&p, E) == 1 {
            continue; // e must be coprime with p - 1
        }
        if probably_prime(&p, 24) {
            return p;
        }
    }
}

/// `signing-key.bin`: the primes of an RSA key, big-endian. `format` is 0, which tells it from
/// [`TwoPrimeKeyFile`] (that layout starts with the length of p, never 0).
#[derive(Clone, Serialize, Deserialize)]
struct KeyFile {
    format: u64,
    primes: Vec<Vec<u8>>,
    created_ms: u64,
}

/// The layout of `signing-key.bin` before multi-prime keys; still loaded.
#[derive(Deserialize)]
struct TwoPrimeKeyFile {
    p: Vec<u8>,
    q: Vec<u8>,
    created_ms: u64,
}

/// The signing key, created or loaded on first use rather than at start-up: generating a key
/// takes tens of milliseconds (1024 bits) to a fraction of a second (2048) even optimized, and
/// the broker must answer within milliseconds of exec. Release builds start loading it on a
/// background thread at open, so the first publish rarely waits.
pub struct Signer {
    dir: std::path::PathBuf,
    /// Size of a key generated for a directory without one.
    bits: KeyBits,
    key: OnceLock<Key>,
}

impl Signer {
    /// A signer for the key kept in `dir`: the one there whatever its size, or a fresh one of
    /// `bits` created there on first use.
    pub fn load_or_create(dir: &Path, bits: KeyBits) -> ServiceResult<Signer> {
        std::fs::create_dir_all(dir)
            .map_err(|e| ServiceError::internal(format!("sns signing key: {e}")))?;
        Ok(Signer {
            dir: dir.to_path_buf(),
            bits,
            key: OnceLock::new(),
        })
    }

    /// Bits of the modulus of the key in use (loading or creating it if need be).
    pub fn key_bits(&self) -> usize {
        bits(&self.key().n)
    }

    /// Starts loading or creating the key on its own thread.
    pub fn prewarm(self: &std::sync::Arc<Self>) {
        let me = std::sync::Arc::clone(self);
        let _ = std::thread::Builder::new()
            .name("sns-key".into())
            .spawn(move || {
                me.key();
            });
    }

    fn key(&self) -> &Key {
        self.key.get_or_init(|| match Key::load_or_create(&self.dir, self.bits) {
            Ok(k) => k,
            Err(e) => {
                // Signing must not fail a publish; an unpersisted key only means the
                // certificate changes at the next restart.
                tracing::warn!(error = %e, "sns signing key could not be stored; using a transient one");
                Key::from_primes(Key::fresh_primes(self.bits), crate::service::now_ms())
            }
        })
    }

    /// RSASSA-PKCS1-v1_5 over `data` with SHA1 (`version` "1") or SHA256 (otherwise).
    pub fn sign(&self, data: &[u8], version: &str) -> Vec<u8> {
        self.key().sign(data, version)
    }

    /// [`Signer::sign`] on the general-size arithmetic the fast path is tested against; only
    /// for `benches/sign.rs` to show what the fast path gains.
    #[doc(hidden)]
    pub fn sign_reference(&self, data: &[u8], version: &str) -> Vec<u8> {
        let key = self.key();
        key.raw_sign_slow(&from_be(&key.encode(data, version)), key.modulus_len())
    }

    /// Checks a base64 signature made by [`Signer::sign`] over `data`.
    pub fn verify(&self, data: &[u8], signature_b64: &str, version: &str) -> bool {
        self.key().verify(data, signature_b64, version)
    }

    /// The self-signed certificate of the key, PEM-encoded.
    pub fn cert_pem(&self) -> String {
        self.key().cert_pem()
    }
}

/// One prime of a [`Key`] and its CRT parameters.
struct Prime {
    r: Limbs,
    /// d mod (r − 1)
    d: Limbs,
    /// (product of the primes before this one)⁻¹ mod r; 1 for the first.
    coeff: Limbs,
    mont: Mont,
}

/// An RSA key with its CRT parameters and self-signed certificate.
pub struct Key {
    n: Limbs,
    /// Two (keys made before multi-prime ones) or [`MAX_PRIMES`].
    primes: Vec<Prime>,
    /// The fast path for the sizes [`KeyBits`] makes; other keys sign on `primes`' `mont`.
    fast: Option<FastKey>,
    cert_der: Vec<u8>,
}

impl Key {
    /// The key of `primes`: distinct odd primes, none ≡ 1 mod e (see [`Key::check_primes`]).
    fn from_primes(primes: Vec<Limbs>, created_ms: u64) -> Key {
        let n = primes.iter().fold(vec![1u64], |acc, r| mul(&acc, r));
        let phi = primes
            .iter()
            .fold(vec![1u64], |acc, r| mul(&acc, &sub(r, &[1])));
        // d = (k·φ + 1) / e with k = -φ⁻¹ mod e, so that e·d ≡ 1 (mod φ).
        let phi_mod_e = rem_small(&phi, E);
        let inv = modinv_u64(phi_mod_e, E);
        let k = (E - inv) % E;
        let d = div_small(&add(&mul(&phi, &[k]), &[1]), E);
        let mut below = vec![1u64];
        let mut parts = Vec::with_capacity(primes.len());
        for r in primes {
            let mont = Mont::new(&r);
            // Fermat: r is prime, so x⁻¹ = x^(r−2) mod r.
            let coeff = mont.pow(&rem(&below, &r), &sub(&r, &[2]));
            below = mul(&below, &r);
            parts.push(Prime {
                d: rem(&d, &sub(&r, &[1])),
                coeff,
                mont,
                r,
            });
        }
        let fast = FastKey::new(&parts);
        let mut s = Key {
            n,
            primes: parts,
            fast,
            cert_der: Vec::new(),
        };
        s.cert_der = s.certificate(created_ms);
        s
    }

    /// Whether `primes` (read from a key file) can make a key: 2 to [`MAX_PRIMES`] of them,
    /// distinct, odd, above 3 and not ≡ 1 mod e, with a product of at least 512 bits (room
    /// for a PKCS#1 v1.5 SHA-256 signature). Primality itself is trusted: the file is ours.
    fn check_primes(primes: &[Limbs]) -> bool {
        (2..=MAX_PRIMES).contains(&primes.len())
            && primes.iter().enumerate().all(|(i, r)| {
                bits(r) > 2 && bit(r, 0) && rem_small(r, E) != 1 && !primes[..i].contains(r)
            })
            && bits(&primes.iter().fold(vec![1u64], |n, r| mul(&n, r))) >= MIN_MODULUS_BITS
    }

    /// A fresh key of `count` distinct primes whose product has exactly `modulus_bits` bits.
    #[cfg_attr(debug_assertions, allow(dead_code))]
    fn generate(modulus_bits: usize, count: usize) -> Vec<Limbs> {
        let mut primes: Vec<Limbs> = Vec::with_capacity(count);
        while primes.len() < count {
            let r = random_prime(modulus_bits / count);
            if !primes.contains(&r) {
                primes.push(r);
            }
        }
        primes
    }

    /// The primes of a fresh `size` key: [`MAX_PRIMES`] of them (see [`KeyBits`]). Debug
    /// builds (the test suites: unoptimized, many fresh directories and child brokers) use a
    /// fixed development key of that size, because generating one takes up to seconds without
    /// optimizations; release builds generate a key per data directory (milliseconds; once).
    /// `keygen_makes_working_keys` covers generation.
    fn fresh_primes(size: KeyBits) -> Vec<Limbs> {
        #[cfg(debug_assertions)]
        {
            let primes = match size {
                KeyBits::Rsa1024 => DEV_1024,
                KeyBits::Rsa2048 => DEV_2048,
            };
            let unhex = |h: &str| -> Vec<u8> {
                (0..h.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap_or(0))
                    .collect()
            };
            primes.iter().map(|h| from_be(&unhex(h))).collect()
        }
        #[cfg(not(debug_assertions))]
        {
            Key::generate(size.bits(), MAX_PRIMES)
        }
    }

    /// Loads the key of `dir` whatever its size and prime count, or creates one of `size` there
    /// (atomically).
    fn load_or_create(dir: &Path, size: KeyBits) -> ServiceResult<Key> {
        let path = dir.join(KEY_FILE);
        let io = |e: std::io::Error| ServiceError::internal(format!("sns signing key: {e}"));
        if let Ok(bytes) = std::fs::read(&path) {
            let (primes, created_ms) = if bytes.starts_with(&[0; 8]) {
                let k: KeyFile = crate::codec::decode(&bytes)?;
                (k.primes, k.created_ms)
            } else {
                let k: TwoPrimeKeyFile = crate::codec::decode(&bytes)?;
                (vec![k.p, k.q], k.created_ms)
            };
            let primes: Vec<Limbs> = primes.iter().map(|r| from_be(r)).collect();
            if !Key::check_primes(&primes) {
                return Err(ServiceError::internal(format!(
                    "sns signing key: {} does not hold a usable RSA key",
                    path.display()
                )));
            }
            return Ok(Key::from_primes(primes, created_ms));
        }
        // One key per size per process for fresh directories: tests open hundreds of them.
        static FRESH: [OnceLock<Vec<Vec<u8>>>; 2] = [OnceLock::new(), OnceLock::new()];
        let primes = FRESH[size as usize].get_or_init(|| {
            Key::fresh_primes(size)
                .iter()
                .map(|r| to_be(r, 0))
                .collect()
        });
        let k = KeyFile {
            format: 0,
            primes: primes.clone(),
            created_ms: crate::service::now_ms(),
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let tmp = dir.join(format!("{KEY_FILE}.tmp"));
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp).map_err(io)?;
            f.write_all(&crate::codec::encode(&k)).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, &path).map_err(io)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(Key::from_primes(
            primes.iter().map(|r| from_be(r)).collect(),
            k.created_ms,
        ))
    }

    fn modulus_len(&self) -> usize {
        bits(&self.n).div_ceil(8)
    }

    /// RSASSA-PKCS1-v1_5 over `data` with SHA1 (`version` "1") or SHA256 (otherwise).
    pub fn sign(&self, data: &[u8], version: &str) -> Vec<u8> {
        self.raw_sign_em(&self.encode(data, version))
    }

    /// EMSA-PKCS1-v1_5 encoding of `data`'s digest.
    fn encode(&self, data: &[u8], version: &str) -> Vec<u8> {
        let digest_info: Vec<u8> = if version == "1" {
            let mut v = vec![
                0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04,
                0x14,
            ];
            v.extend(sha1(data));
            v
        } else {
            let mut v = vec![
                0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x01, 0x05, 0x00, 0x04, 0x20,
            ];
            v.extend(Sha256::digest(data));
            v
        };
        self.pad(&digest_info)
    }

    fn pad(&self, digest_info: &[u8]) -> Vec<u8> {
        let k = self.modulus_len();
        let mut em = vec![0x00, 0x01];
        // Keys hold at least 512 bits (`check_primes`); never underflow regardless.
        em.resize(k.saturating_sub(digest_info.len() + 1).max(2), 0xff);
        em.push(0x00);
        em.extend_from_slice(digest_info);
        em
    }

    fn raw_sign(&self, digest_info: &[u8]) -> Vec<u8> {
        self.raw_sign_em(&self.pad(digest_info))
    }

    fn raw_sign_em(&self, em: &[u8]) -> Vec<u8> {
        let k = self.modulus_len();
        let m = from_be(em);
        if let Some(s) = self.fast.as_ref().and_then(|f| f.private(&m)) {
            return to_be(&s, k);
        }
        self.raw_sign_slow(&m, k)
    }

    /// The reference private operation on the general-size arithmetic (RFC 8017 §5.1.2):
    /// x = m_0, then for each further prime r_i, x += (r_0⋯r_{i−1})·((m_i − x)·coeff_i mod r_i).
    fn raw_sign_slow(&self, m: &[u64], k: usize) -> Vec<u8> {
        let mut x: Limbs = Vec::new();
        let mut below = vec![1u64];
        for (i, p) in self.primes.iter().enumerate() {
            let mi = p.mont.pow(&rem(m, &p.r), &p.d);
            if i == 0 {
                x = mi;
            } else {
                let xr = rem(&x, &p.r);
                let diff = if cmp(&mi, &xr).is_lt() {
                    sub(&add(&mi, &p.r), &xr)
                } else {
                    sub(&mi, &xr)
                };
                let h = rem(&mul(&diff, &p.coeff), &p.r);
                x = add(&x, &mul(&below, &h));
            }
            below = mul(&below, &p.r);
        }
        to_be(&x, k)
    }

    /// Checks a base64 signature made by [`Key::sign`] over `data`.
    pub fn verify(&self, data: &[u8], signature_b64: &str, version: &str) -> bool {
        let Ok(sig) = base64::engine::general_purpose::STANDARD.decode(signature_b64) else {
            return false;
        };
        if sig.len() != self.modulus_len() || cmp(&from_be(&sig), &self.n).is_ge() {
            return false;
        }
        self.verify_raw(&sig) == self.encode(data, version)
    }

    /// The public operation: `s^e mod n`.
    fn verify_raw(&self, sig: &[u8]) -> Vec<u8> {
        let m = Mont::new(&self.n);
        to_be(&m.pow(&from_be(sig), &[E]), self.modulus_len())
    }

    pub fn cert_pem(&self) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(&self.cert_der);
        let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
        for chunk in b64.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(chunk).unwrap_or(""));
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
        out
    }

    /// A self-signed X.509 v3 certificate for the key (sha256WithRSAEncryption).
    fn certificate(&self, created_ms: u64) -> Vec<u8> {
        let sig_alg = seq(&[
            oid(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b]),
            vec![0x05, 0x00],
        ]);
        let name = seq(&[tlv(
            0x31,
            &seq(&[oid(&[0x55, 0x04, 0x03]), tlv(0x0c, b"sns.millpond.local")]),
        )]);
        let secs = created_ms / 1000;
        let validity = seq(&[
            tlv(0x17, utc_time(secs.saturating_sub(86_400)).as_bytes()),
            tlv(0x17, utc_time(secs + 20 * 365 * 86_400).as_bytes()),
        ]);
        let rsa_pub = seq(&[int(&to_be(&self.n, 0)), int(&to_be(&[E], 0))]);
        let mut bitstring = vec![0u8];
        bitstring.extend(rsa_pub);
        let spki = seq(&[
            seq(&[
                oid(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01]),
                vec![0x05, 0x00],
            ]),
            tlv(0x03, &bitstring),
        ]);
        let serial = int(&to_be(&[created_ms | 1], 0));
        let tbs = seq(&[
            tlv(0xa0, &int(&[2])),
            serial,
            sig_alg.clone(),
            name.clone(),
            validity,
            name,
            spki,
        ]);
        let mut digest_info = vec![
            0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x01, 0x05, 0x00, 0x04, 0x20,
        ];
        digest_info.extend(Sha256::digest(&tbs));
        let mut sig = vec![0u8];
        sig.extend(self.raw_sign(&digest_info));
        seq(&[tbs, sig_alg, tlv(0x03, &sig)])
    }
}

fn modinv_u64(a: u64, m: u64) -> u64 {
    // Extended Euclid on i128; m is prime (65537) and a ≠ 0 mod m.
    let (mut t, mut new_t, mut r, mut new_r) = (0i128, 1i128, m as i128, a as i128);
    while new_r != 0 {
        let q = r / new_r;
        (t, new_t) = (new_t, t - q * new_t);
        (r, new_r) = (new_r, r - q * new_r);
    }
    t.rem_euclid(m as i128) as u64
}

// --- DER ---------------------------------------------------------------------------------------

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

fn seq(parts: &[Vec<u8>]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

fn oid(encoded: &[u8]) -> Vec<u8> {
    tlv(0x06, encoded)
}

fn int(be: &[u8]) -> Vec<u8> {
    let mut v: Vec<u8> = be.iter().copied().skip_while(|b| *b == 0).collect();
    if v.is_empty() || v[0] & 0x80 != 0 {
        v.insert(0, 0);
    }
    tlv(0x02, &v)
}

fn utc_time(secs: u64) -> String {
    // YYMMDDHHMMSSZ, from the ISO form.
    let iso = super::util::iso8601(secs * 1000);
    format!(
        "{}{}{}{}{}{}Z",
        &iso[2..4],
        &iso[5..7],
        &iso[8..10],
        &iso[11..13],
        &iso[14..16],
        &iso[17..19]
    )
}

/// SHA-1, for SignatureVersion 1 (AWS still signs with it by default).
pub fn sha1(data: &[u8]) -> [u8; 20] {
    use sha1::Digest;
    sha1::Sha1::digest(data).into()
}

/// The string SNS signs: `Key\nValue\n` for each signed member in AWS's order.
pub fn canonical(pairs: &[(&str, Option<&str>)]) -> String {
    let mut s = String::new();
    for (k, v) in pairs {
        if let Some(v) = v {
            s.push_str(k);
            s.push('\n');
            s.push_str(v);
            s.push('\n');
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha1_vectors() {
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        assert_eq!(hex(&sha1(b"")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(
            hex(&sha1(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            hex(&sha1(&vec![b'a'; 1_000])),
            "291e9a6c66994949b57ba5e650361e98fc36b1ba"
        );
    }

    #[test]
    fn bignum_basics() {
        let a = from_be(&[0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x11]);
        assert_eq!(
            to_be(&a, 0),
            vec![0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x11]
        );
        let m = from_be(&[0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07]);
        let r = rem(&mul(&a, &a), &m);
        let mont = Mont::new(&m);
        assert_eq!(mont.pow(&rem(&a, &m), &[2]), r);
        assert_eq!(rem_small(&[100], 7), 2);
        assert_eq!(modinv_u64(3, 7), 5);
        assert!(probably_prime(&[1_000_000_007], 10));
        assert!(!probably_prime(&[1_000_000_007u64 * 3], 10));
    }

    const SIZES: [KeyBits; 2] = [KeyBits::Rsa1024, KeyBits::Rsa2048];

    #[test]
    fn key_bits_parse() {
        assert_eq!(KeyBits::default(), KeyBits::Rsa1024);
        assert_eq!("1024".parse::<KeyBits>(), Ok(KeyBits::Rsa1024));
        assert_eq!(" 2048".parse::<KeyBits>(), Ok(KeyBits::Rsa2048));
        for bad in ["", "512", "4096", "2k", "-1"] {
            let e = bad.parse::<KeyBits>().unwrap_err();
            assert!(e.contains("1024 or 2048"), "{e}");
        }
        assert_eq!(KeyBits::Rsa2048.to_string(), "2048");
    }

    #[test]
    fn signatures_verify_and_persist() {
        for size in SIZES {
            signatures_verify_and_persist_at(size);
        }
    }

    fn signatures_verify_and_persist_at(size: KeyBits) {
        let dir = tempfile::tempdir().unwrap();
        let signer = Signer::load_or_create(dir.path(), size).unwrap();
        assert!(
            !dir.path().join(KEY_FILE).exists(),
            "the key is made on first use, not at open"
        );
        let s = signer.key();
        assert_eq!(bits(&s.n), size.bits());
        assert_eq!(signer.key_bits(), size.bits());
        for version in ["1", "2"] {
            let sig = s.sign(b"Message\nhello\n", version);
            assert_eq!(sig.len(), size.bits() / 8);
            let em = s.verify_raw(&sig);
            assert_eq!(&em[..2], &[0x00, 0x01]);
            let tail = if version == "1" {
                sha1(b"Message\nhello\n").to_vec()
            } else {
                Sha256::digest(b"Message\nhello\n").to_vec()
            };
            assert!(em.ends_with(&tail));
        }
        let pem = s.cert_pem();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
        // Reloading gives the same key and certificate, whatever size new keys would get.
        for other in SIZES {
            let again = Signer::load_or_create(dir.path(), other).unwrap();
            assert_eq!(again.key().n, s.n);
            assert_eq!(again.cert_pem(), pem);
        }
    }

    #[test]
    fn keygen_makes_working_keys() {
        // Small primes keep this fast unoptimized; the code path is the release builds' one.
        // Primes of 128 bits sign on the general arithmetic, of 256 bits on the fast path.
        for (modulus_bits, count) in [(512, 2), (512, 4), (1024, 4)] {
            let primes = Key::generate(modulus_bits, count);
            assert_eq!(primes.len(), count);
            assert!(Key::check_primes(&primes));
            let s = Key::from_primes(primes, 0);
            assert_eq!(bits(&s.n), modulus_bits, "{count} primes");
            assert_eq!(s.fast.is_some(), modulus_bits / count == 256);
            let mut di = vec![
                0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04,
                0x14,
            ];
            di.extend(sha1(b"x"));
            let sig = s.raw_sign(&di);
            assert!(s.verify_raw(&sig).ends_with(&di));
            let em = from_be(&s.pad(&di));
            assert_eq!(sig, s.raw_sign_slow(&em, s.modulus_len()));
        }
    }

    fn random_below(n: &[u64]) -> Limbs {
        rem(&from_be(&random_bytes(n.len() * 8 + 8)), n)
    }

    fn fixed_agrees_with_general<const N: usize>() {
        for _ in 0..20 {
            let mut nb = random_bytes(N * 8);
            nb[0] |= 0x80;
            let last = nb.len() - 1;
            nb[last] |= 1;
            let n = from_be(&nb);
            let slow = Mont::new(&n);
            let fast = Fixed::<N>::new(&n).unwrap();
            let (a, b) = (random_below(&n), random_below(&n));
            let fa = to_fixed::<N>(&a).unwrap();
            let fb = to_fixed::<N>(&b).unwrap();
            let pa = slow.pad(&a);
            let pb = slow.pad(&b);
            assert_eq!(norm(fast.mul(&fa, &fb).to_vec()), norm(slow.mul(&pa, &pb)));
            assert_eq!(norm(fast.sqr(&fa).to_vec()), norm(slow.sqr(&pa)));
            for len in [1, N - 1, N, N + 1, 2 * N, 4 * N + 1] {
                let x = from_be(&random_bytes(len.max(1) * 8));
                assert_eq!(
                    norm(fast.leave(&fast.enter_long(&x)).to_vec()),
                    rem(&x, &n),
                    "{len} limbs"
                );
            }
            let (fa_b, fb_b) = (fast.below(fa), fast.below(fb));
            assert_eq!((fa_b, fb_b), (fa, fb));
            // Any N-limb value is below 2n (n has its top bit set): one subtraction.
            let x = from_be(&random_bytes(N * 8));
            assert_eq!(
                norm(fast.below(to_fixed::<N>(&x).unwrap()).to_vec()),
                rem(&x, &n)
            );
            let mut top = [u64::MAX; N];
            top[0] = u64::MAX - 1;
            assert_eq!(norm(fast.below(top).to_vec()), rem(&top, &n));
            let sum = norm(fast.add(&fa, &fb).to_vec());
            assert_eq!(sum, rem(&add(&a, &b), &n));
            let diff = norm(fast.sub(&fa, &fb).to_vec());
            assert_eq!(diff, rem(&sub(&add(&a, &n), &b), &n));
            let e = random_below(&n);
            assert_eq!(
                norm(fast.leave(&fast.pow(&fast.mul(&fa, &fast.rr), &e)).to_vec()),
                slow.pow(&a, &e)
            );
            // Exponents with long zero runs and short ones exercise the window edges.
            for e in [
                vec![0u64],
                vec![1],
                vec![2],
                vec![0b100001],
                vec![1, 1],
                vec![u64::MAX],
            ] {
                assert_eq!(
                    norm(fast.leave(&fast.pow(&fast.mul(&fa, &fast.rr), &e)).to_vec()),
                    norm(slow.pow(&a, &e)),
                    "exponent {e:?}"
                );
            }
        }
        assert!(
            Fixed::<N>::new(&[2]).is_none(),
            "even or short moduli are refused"
        );
    }

    #[test]
    fn fixed_arithmetic_agrees_with_general() {
        fixed_agrees_with_general::<1>();
        fixed_agrees_with_general::<4>();
        fixed_agrees_with_general::<8>();
        fixed_agrees_with_general::<16>();
    }

    #[test]
    fn fast_signatures_match_slow_and_verify() {
        for size in SIZES {
            fast_signatures_match_slow_and_verify_at(size);
        }
        // Small keys sign on the general path and still verify.
        let small = Key::from_primes(Key::generate(512, 4), 0);
        assert!(small.fast.is_none());
        let b64 = base64::engine::general_purpose::STANDARD.encode(small.sign(b"m", "2"));
        assert!(small.verify(b"m", &b64, "2"));
    }

    fn fast_signatures_match_slow_and_verify_at(size: KeyBits) {
        let dir = tempfile::tempdir().unwrap();
        let signer = Signer::load_or_create(dir.path(), size).unwrap();
        let key = signer.key();
        assert_eq!(key.primes.len(), MAX_PRIMES, "new keys are multi-prime");
        assert!(
            matches!(
                (size, &key.fast),
                (KeyBits::Rsa1024, Some(FastKey::Limbs4(_)))
                    | (KeyBits::Rsa2048, Some(FastKey::Limbs8(_)))
            ),
            "RSA-{size} takes its fast path"
        );
        signs_like_the_reference(key);
    }

    /// Fast signatures verify, equal the reference's, and fail to verify when altered.
    fn signs_like_the_reference(key: &Key) {
        let k = key.modulus_len();
        for i in 0..48 {
            let len = 1 + (random_bytes(1)[0] as usize) * 4;
            let msg = random_bytes(len);
            let version = if i % 2 == 0 { "1" } else { "2" };
            let sig = key.sign(&msg, version);
            assert_eq!(sig.len(), k);
            let b64 = base64::engine::general_purpose::STANDARD.encode(&sig);
            assert!(key.verify(&msg, &b64, version), "message {i} verifies");
            if i < 8 {
                let em = from_be(&key.encode(&msg, version));
                assert_eq!(sig, key.raw_sign_slow(&em, k), "fast == slow for {i}");
            }
            // A signature over other bytes or with a flipped bit must not verify.
            let mut other = msg.clone();
            other[0] ^= 1;
            assert!(!key.verify(&other, &b64, version));
            let mut bad = sig.clone();
            bad[k / 2] ^= 0x10;
            let bad = base64::engine::general_purpose::STANDARD.encode(&bad);
            assert!(!key.verify(&msg, &bad, version));
        }
    }

    /// Two-prime keys (the layout of `signing-key.bin` before multi-prime keys) of both sizes.
    const TWO_PRIME_KEYS: [(KeyBits, [&str; 2]); 2] = [
        (
            KeyBits::Rsa1024,
            [
                "f13a686cd3d9849099bb0c4634da5c4c3e61564fcf69ce246726fd83372dca315fd83144958a369618be1b355fb776fcf4a12028c96b22824c90db6b3117bacd",
                "e0fb8c846dcf9b7815719ba77ddc3b9b8d877f33e4707f07a032df5760e4e0ae184c091216c72f9c15a33b75deab4a8002fab0dcf95c5bee768d357d46956683",
            ],
        ),
        (
            KeyBits::Rsa2048,
            [
                "de1bbbb5395447ba98eac91136fd3672cdace4bd58cc4e84b90e6031030ee9952cefc36d4e944e9aad3e99e377e9e763953ee412fe814dc6acf7b3712e0f81980515a6e9202548dda1ecd5acd07abf8595126a73e7e042aa9babd407358928931b98bac81d5e41cab32742ce8ab5a80253d7ed6b42d24e3ca92248cd52d1c7b9",
                "c35d870f0e514c7fbf21806d7f06c9fc052783f11e114ee9a214bc150269db163e1341aa7048483f81ab635dd8008a5cfceb881213c74d089667ee82842af8e1464dce1cf5714f19925a5ba2aff31b9aaf97f39a6a904363ae7c14166add6e360ee7dc72ca554624b092ccbcb1627685a0fcaa4c12294a3f896870193c92124f",
            ],
        ),
    ];

    #[test]
    fn two_prime_key_files_still_load_and_sign_fast() {
        #[derive(Serialize)]
        struct TwoPrimes {
            p: Vec<u8>,
            q: Vec<u8>,
            created_ms: u64,
        }
        let unhex = |h: &str| hex::decode(h).unwrap();
        for (size, [p, q]) in TWO_PRIME_KEYS {
            let dir = tempfile::tempdir().unwrap();
            let file = TwoPrimes {
                p: unhex(p),
                q: unhex(q),
                created_ms: 1_700_000_000_000,
            };
            std::fs::write(dir.path().join(KEY_FILE), crate::codec::encode(&file)).unwrap();
            // Whatever size new keys would get.
            let signer = Signer::load_or_create(dir.path(), KeyBits::Rsa1024).unwrap();
            let key = signer.key();
            assert_eq!(key.primes.len(), 2);
            assert_eq!(bits(&key.n), size.bits());
            assert!(matches!(
                (size, &key.fast),
                (KeyBits::Rsa1024, Some(FastKey::Limbs8(_)))
                    | (KeyBits::Rsa2048, Some(FastKey::Limbs16(_)))
            ));
            signs_like_the_reference(key);
        }
    }

    #[test]
    fn unusable_key_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let primes = |ps: Vec<Vec<u8>>| KeyFile {
            format: 0,
            primes: ps,
            created_ms: 0,
        };
        let good = Key::fresh_primes(KeyBits::Rsa1024);
        let be = |r: &Limbs| to_be(r, 0);
        for bad in [
            primes(vec![be(&good[0])]),
            primes(vec![be(&good[0]), be(&good[0])]),
            primes(vec![be(&good[0]), vec![4]]),
            primes(good.iter().chain(&good[..1]).map(be).collect()),
            primes(vec![vec![5], vec![7]]),
        ] {
            std::fs::write(dir.path().join(KEY_FILE), crate::codec::encode(&bad)).unwrap();
            assert!(Key::load_or_create(dir.path(), KeyBits::Rsa1024).is_err());
        }
        // A signer falls back to a transient key rather than failing a publish.
        let signer = Signer::load_or_create(dir.path(), KeyBits::Rsa1024).unwrap();
        let sig = base64::engine::general_purpose::STANDARD.encode(signer.sign(b"m", "1"));
        assert!(signer.verify(b"m", &sig, "1"));
    }

    /// An independent verifier: the `openssl` CLI checks our signatures against the public key
    /// of the certificate we serve. Skipped where `openssl` is not installed.
    #[test]
    fn openssl_verifies_signatures() {
        use std::process::Command;
        if Command::new("openssl").arg("version").output().is_err() {
            eprintln!("openssl not installed; skipping");
            return;
        }
        for size in SIZES {
            openssl_verifies_signatures_at(size);
        }
    }

    fn openssl_verifies_signatures_at(size: KeyBits) {
        use std::process::Command;
        let dir = tempfile::tempdir().unwrap();
        let signer = Signer::load_or_create(dir.path(), size).unwrap();
        let cert = dir.path().join("cert.pem");
        std::fs::write(&cert, signer.cert_pem()).unwrap();
        let out = Command::new("openssl")
            .args(["x509", "-in"])
            .arg(&cert)
            .args(["-pubkey", "-noout"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let public = dir.path().join("pub.pem");
        std::fs::write(&public, &out.stdout).unwrap();
        let text = Command::new("openssl")
            .args(["x509", "-noout", "-text", "-in"])
            .arg(&cert)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&text.stdout);
        assert!(
            text.contains(&format!("Public-Key: ({size} bit)")),
            "the certificate carries an RSA-{size} key: {text}"
        );
        let data = dir.path().join("data");
        let sig = dir.path().join("sig");
        let verify = |digest: &str| {
            Command::new("openssl")
                .args(["dgst", digest, "-verify"])
                .arg(&public)
                .arg("-signature")
                .arg(&sig)
                .arg(&data)
                .output()
                .unwrap()
                .status
                .success()
        };
        for i in 0..6 {
            let text = format!(
                "Message\nhello {i} {}\nType\nNotification\n",
                "x".repeat(i * 97)
            );
            std::fs::write(&data, &text).unwrap();
            for (version, digest) in [("1", "-sha1"), ("2", "-sha256")] {
                let mut s = signer.sign(text.as_bytes(), version);
                std::fs::write(&sig, &s).unwrap();
                assert!(verify(digest), "openssl accepts v{version} signature {i}");
                s[7] ^= 1;
                std::fs::write(&sig, &s).unwrap();
                assert!(!verify(digest), "openssl rejects a corrupted signature");
            }
        }
        // The certificate's own self-signature checks out too.
        let out = Command::new("openssl")
            .args(["verify", "-check_ss_sig", "-CAfile"])
            .arg(&cert)
            .arg(&cert)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }

    #[test]
    fn canonical_strings() {
        assert_eq!(
            canonical(&[
                ("Message", Some("m")),
                ("Subject", None),
                ("Type", Some("Notification"))
            ]),
            "Message\nm\nType\nNotification\n"
        );
    }
}
