//! Vectors made by Python `cryptography` 48.0.0 and `xdrlib`, exactly as the real
//! client (cryptology-client-python) builds its messages. TEST-ONLY keys, generated for these
//! vectors; they protect nothing. Only the server's private key is kept (to open message 1).

use super::frame::{open_client_frame, ClientLayout, ClientMessageType};
use super::handshake::{verify_challenge, ClientHello};
use super::keys::{AesKey, PrivateKey, PublicKey};

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn client_aes_key() -> AesKey {
    AesKey::from_bytes(std::array::from_fn(|i| i as u8))
}

const SERVER_PRIVATE_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCY1Z+cEDBeGXzn
o/9WjYLtJAtizqbxLhROecniDc5oVERgmkKHzG3zTDsOGL2gl82BA3b+2gzyo4Ni
TbuHtdgi5XDRtp4CY24xyZndU5k59rPixhcJbiF7Mnm5UxNIjUPlEolkEUkO/xhi
+oveRu1g3WYuFZ08i0eQIMTWC0KzQJeL6vMRr8vCdsLUnc2VLkAF/SfaQkfXyqVL
UQz8rWVY9DCirnhIoqVCKeReeNok0xkPVuIYe/ipr41HsCpRnBI5WqT/dt5E6NNo
9U0jGlOkI+8Zijh5VxyGxSvGb2PRjM2Tj7AJQHjiLdzca7LTFgZRBfF35EnP6u5D
8li9oY+tAgMBAAECggEAA1H4NFwAV2SW4+4rVZ3CMZUwNd4aFhKxZSyk8qcsy/Ox
OrgFl1FhV3AD+53htg5adIxhp4pcEnLz/VVjgY1f5oZwsyHhBOIhbaUQFZTyjEgU
z9AdUqun81k0kZ+0qavl1faKdhYPYQ1bP95qmdrqvLg9P8OUtYzN2OyDuAxHHEXC
oA7cS5xVDgOS4tMXQVn1TxKzIanSMmd7+ciQDbDK/XtR0tHv7ibiCCwtRtkReTrc
qyLYVvM4odhSLBsxhRUJkAWCnWfEaz28L+0pChKCho+YaAiWk9KxaCjqsQIcn4Uk
d90dnrzkePUkKSFR6OHWjxzdF+j+mDRMWEn+kHDSMQKBgQDHWNTNTrbw0kScQz23
ZJB5ztN9q32EaSWSNGr1tNdXTUFYk757dX0HnrCwEICLmmHjHEDil2VCxiJriWIK
a8mKihm8yEcW6bAo1VM4D7GkMf1NDRpQTQub5NN0pbdeUeWYe5U8m1pZAMlD7qJR
NUvKPwt4Y5g9uDOUsiAOxKP0HwKBgQDERNkkBcvOrEht0gnujWtVQP2iflYriXtQ
hiPCPtA5/VSCX0uOJHEyyT5l3hEWK8dGCWv4FcMEw+CbpiIOAtnrCVMiF+EN0/QO
4ANv4q2HT9JVG/AJbHZKqAwmaDXVizogGlSp+UQ/JW4hRWk5bDVC8qCs3nVcSaNy
u7EfYzZiswKBgEavItWhoZCGnjliRlHu4KOwSKF420rGFcJfv8Vb2Ddmd1M3IAWa
xTicdj4Xu9zEYw0qiX9O+2LP6oiC8DaNvarYCQQ9Z6eiOQphid6JAg4cg5p8mOX8
S699VdU4pWpWU7jbqTESTNjeRH9H8FonMbaG4ERR3DuWQwPonSFfbFs1AoGBAJko
uOI5e6/OFb9Ndt6nkSi4TLUvLYNQB+DwrJr6dXerTvVl9An6OjPNg1nvDxpkE19+
Hrk8EjF3waD05gJVC0U0w6EJTWCDFCM/gK8hDxVWnuY3pPtVnoHn3YNjMw9vVG6U
3Zi+ohk81lI0XkanQHD78ZK1DpR0Co6QFUpPG7OtAoGAMpjJlmMBYhCyNu1zPEnE
J7sMXCvEnah78AoBboxzUf4xaFXD5UgiE4DPwgyporFicKMpTpJXn8WSQ/ZRuxFQ
MFFpuu0W9o3vPfa9uehuhfQTwIVmD67F4hOG6QD07QIhnJTrJ7GUDwvVyYaY/VZt
9Qz/EbUBuQGqscstdAXzjP8=
-----END PRIVATE KEY-----\n";
const CLIENT_PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAijwwpkt10PzeByDDU3bL
RnzXNcWFlclJUHy3C2thPJYumEKoE8gJEhGlmZUnyyM6En7fUaZmRvp/LrvKk/H7
L40dx/wV1G8Hr1qMQNBmTS+dL6Y+A0u50ZXMs6kA6bvHF38QMgD4t+zktdf58fS3
FKBbOquq4Oe8A60hF3gt/dL0ZpTeRx6STI6FeF/AEe29QS8Zj7hd4ffZbM4fnqer
/LlmVW37Gp5kRmTK5Ad0F2XNK6DAQbhVpOqZvJeVYin/WHFtyZ7dU8snREBCftgo
3MV9AjzYnt0ZkZDBwEP7N703g43dF9s5qPaY+npt9p/AlDBzN8uvYDI0B1IPfZJz
JQIDAQAB
-----END PUBLIC KEY-----\n";
/// Message 1: client id "robot_gambler", last seen order 1234567890123, key 0..32, version 5.
const MSG1: &str = "8b55f14dc49843e6e334f188f82fd3399594081e3c0b1d38df7339cdc92674fe48b6de6cd53fe2c47b38076b1ddb5983e89fb05704d841748ec6714dc2cfcbcce2bee23e2d9e92db05bcf9b45b2a676b95af8cf4b54f422c27a0d44a328a7d4e43ee9af49469da135a3837ebbbdac331ba47347e5af2bbcdca319587bd282dc8105352f432f2246c6ff1e56f8b3f33afcddec0abbc1057fbb2a4de5dbc1caabd2b596df75ed13257a595880ac74e72018772427a4100fcaaa9cf796a51ca278fb641bc4978dfa872f403d1f1f423c48b822c23bb59036c3eeaf85d6fb91b1eebd8f2f0b820560d98da7d45a71833822501abddbd6bd5a784d8ae870068bcb521";
/// `data_to_sign` = 100..132.
const MSG3: &str = "0a3b92deb9be3d115c8c20649bf32563bb3f8722a7eeca9e1de6fb02b7fd40f7afd4697d967f59b3c1020042b6870c23912acb8dfd631781e9a151fc08980a8e98ec3ee197e432798925c6e98d560c4129f323545760185a9df1d4fb51c76aa01ba60b17da16536e416cc68cab6e596331ce8700b75a0cd70671c4cd3c620c8b2e7bc086e6d9a0048f88d14df106c20e969cfb07acfb6c3e20a68fa568e5998b87ae2b3ca01396c03f1965529c38c6fc53d59f017ace4a700d5a8a0914a977b7a48e77527094c16efd5446dde3155fcb77965cd694c0a7cc462f41c134a882b406c4ac9645a175042590b8575034b19e4ae56277df36705b87d63d3e65f37320";
/// Inbox, sequence 42, signed (version 1–2 layout), under key 0..32.
const SIGNED_FRAME: &str = "097ea98196d6c2a1d81ac8d31a517b62c68fb82475d3b4f3053da456ff71a6b2c62a754afd3284408a167c8e0a28040ae9d6be5f398a4c79302a4112418fc3908d5fceb51d0f60bb11c7336de858c2471c94c23c97f7817e71474c8babb4941cd96df48c1271207bce2ebb4998ac28a01ee6121f46db24cddfe51a3b58937d1f873f6dcdb45a69ed0220623f85b01804182e4c9cf805db28b634959fb7b3a94f6e44047c5fa7aa9c62b6b3150a156f599c8bcb3133a4f6891403414428472af4241303fa7d57f21824ce0678246d651c40cd87aefa39492868f4064fbe9b8856b7d5bd57bc597b8b97c5aaa365ff2e103660aaa3343b0c256a174d9c4555a77044e2544f9d423c79f07a9e8e998179c9d1759cbae6a164549c5819f09a85e13ea323039f6bf8067217134b6fa1c74e48be6fe8326fbe876067c2bd80d15a89445883e8c9264375fa1c6a8653164d88c50d2afd50f8110de58f35fa78a3afa0eb";
/// RPC request 7, plain (version 3+ layout), under key 0..32.
const PLAIN_FRAME: &str = "97d6c4882619ef9d17a53540755b44d811f2d1b888683fd9052eda33bbd3c82099dbe7fedafa499d8ad00cae03d0d1f7ad459c502abbb90a37f713418b1d8427";

#[test]
fn secure_interop_python_message_1_opens() {
    let server = PrivateKey::from_pem(SERVER_PRIVATE_PEM).unwrap();
    let hello = ClientHello::open(&server, &unhex(MSG1), &mut rand::thread_rng()).unwrap();
    assert_eq!(hello.client_id, "robot_gambler");
    assert_eq!(hello.last_seen_order, 1_234_567_890_123);
    assert_eq!(hello.client_key, client_aes_key());
    assert_eq!(hello.version, 5);
}

#[test]
fn secure_interop_python_signature_verifies() {
    let client = PublicKey::from_pem(CLIENT_PUBLIC_PEM).unwrap();
    let data: Vec<u8> = (100..132).collect();
    verify_challenge(&client, &data, &unhex(MSG3)).unwrap();
    assert!(verify_challenge(&client, &data[1..], &unhex(MSG3)).is_err());
}

#[test]
fn secure_interop_python_client_frames_open() {
    let client = PublicKey::from_pem(CLIENT_PUBLIC_PEM).unwrap();
    let signed = open_client_frame(
        &client_aes_key(),
        ClientLayout::Signed,
        &client,
        &unhex(SIGNED_FRAME),
    )
    .unwrap();
    assert_eq!(signed.kind, ClientMessageType::Inbox);
    assert_eq!(signed.id, 42);
    assert_eq!(
        signed.json,
        br#"{"@type": "PlaceBuyLimitOrder", "price": "0.1"}"#
    );
    let plain = open_client_frame(
        &client_aes_key(),
        ClientLayout::Plain,
        &client,
        &unhex(PLAIN_FRAME),
    )
    .unwrap();
    assert_eq!(plain.kind, ClientMessageType::RpcRequest);
    assert_eq!(plain.id, 7);
    assert_eq!(plain.json, br#"{"@type": "GetBalances"}"#);
}
