//! What a mapper or a worker receives from the owner's process, and the
//! owner from them: hand-over messages on the offer's socket, the lent
//! tunables (SYSCTLS) and the nexus advisory. Decoding never panics; an
//! accepted message, tunable set or advisory encodes back to bytes that
//! decode to it again.

#![no_main]

use libfuzzer_sys::fuzz_target;
use skmem::lend::wire::Msg;
use skmem::sysctls::Sysctls;
use skmem::workers::NexusAdvisoryState;

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    match which % 3 {
        0 => {
            if let Ok(msg) = Msg::decode(bytes) {
                let again = Msg::decode(&msg.encode()).expect("an encoded message decodes");
                assert_eq!(again, msg);
            }
        }
        1 => {
            if let Ok(s) = Sysctls::decode(bytes) {
                assert!(s.validate().is_ok(), "decode accepted invalid tunables");
                let again = Sysctls::decode(&s.to_bytes()).expect("encoded tunables decode");
                assert_eq!(again, s);
            }
        }
        _ => {
            if let Ok(a) = NexusAdvisoryState::decode(bytes) {
                let mut out = Vec::new();
                a.encode(0, &mut out);
                let again = NexusAdvisoryState::decode(&out).expect("an encoded advisory decodes");
                assert_eq!(again, a);
            }
        }
    }
});
