//! Client frames as a session decodes them: `decode_commands`, JSON lines (text frames) and
//! varint-delimited Protobuf (binary frames).
//!
//! Nothing may panic, encoders included (they return errors). A command decoded from JSON
//! re-encodes, in JSON and in Protobuf, to a frame that decodes to the same command. A command
//! decoded from Protobuf re-encodes in Protobuf to the same command; in JSON it is refused (a
//! `bytes` field that is not JSON text) or encoded to one line that decodes to one command, which
//! is then stable (JSON trims the white space around embedded JSON). A bad Protobuf message ends
//! the batch; a bad JSON line stops only itself.

use rpc_crypto_proto::codec::{decode_commands, encode_commands, Format};
use rpc_crypto_proto::protocol::Command;

pub fn run_json(data: &[u8]) {
    let lines = data.split(|&b| b == b'\n').count();
    let mut decoded = 0;
    for command in decode_commands(Format::Json, data) {
        decoded += 1;
        let Ok(command) = command else { continue };
        for format in [Format::Json, Format::Protobuf] {
            let frame = encode_commands(format, std::slice::from_ref(&command))
                .expect("a command read from JSON encodes");
            assert_eq!(
                decode_all(format, &frame),
                vec![command.clone()],
                "{format:?}"
            );
        }
    }
    assert!(decoded <= lines, "at most one command a line");
}

pub fn run_protobuf(data: &[u8]) {
    let mut commands = decode_commands(Format::Protobuf, data);
    for command in commands.by_ref() {
        let Ok(command) = command else {
            break;
        };
        let one = std::slice::from_ref(&command);
        let frame = encode_commands(Format::Protobuf, one).expect("Protobuf always encodes");
        assert_eq!(decode_all(Format::Protobuf, &frame), one);
        let Ok(json) = encode_commands(Format::Json, one) else {
            continue;
        };
        assert!(!json.contains(&b'\n'), "one command, one line");
        let again = decode_all(Format::Json, &json);
        assert_eq!(again.len(), 1);
        let frame = encode_commands(Format::Json, &again).expect("read from JSON, it encodes");
        assert_eq!(
            decode_all(Format::Json, &frame),
            again,
            "stable after one JSON pass"
        );
    }
    assert!(commands.next().is_none(), "a bad message ends the batch");
}

/// Every command of a frame this crate encoded: none may be refused.
fn decode_all(format: Format, frame: &[u8]) -> Vec<Command> {
    decode_commands(format, frame)
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("our own {format:?} frame decodes: {e}"))
}
