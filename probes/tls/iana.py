"""Names of TLS alert descriptions and named groups, as reports print them.

Source: the IANA "Transport Layer Security (TLS) Parameters" registry
(https://www.iana.org/assignments/tls-parameters/): TLS Alerts (RFC 5246 7.2,
RFC 8446 6, RFC 7507, RFC 8446 B.2) and TLS Supported Groups (RFC 8422 5.1.1,
RFC 7919 2, RFC 8446 4.2.7, RFC 8734, draft-ietf-tls-ecdhe-mlkem). A number
missing here is printed as ``alert_N`` or ``group_0xNNNN``; nothing is judged on
these names.
"""

from __future__ import annotations

ALERTS: dict[int, str] = {
    0: "close_notify", 10: "unexpected_message", 20: "bad_record_mac", 21: "decryption_failed",
    22: "record_overflow", 30: "decompression_failure", 40: "handshake_failure", 41: "no_certificate",
    42: "bad_certificate", 43: "unsupported_certificate", 44: "certificate_revoked",
    45: "certificate_expired", 46: "certificate_unknown", 47: "illegal_parameter", 48: "unknown_ca",
    49: "access_denied", 50: "decode_error", 51: "decrypt_error", 60: "export_restriction",
    70: "protocol_version", 71: "insufficient_security", 80: "internal_error",
    86: "inappropriate_fallback", 90: "user_canceled", 100: "no_renegotiation",
    109: "missing_extension", 110: "unsupported_extension", 111: "certificate_unobtainable",
    112: "unrecognized_name", 113: "bad_certificate_status_response", 114: "bad_certificate_hash_value",
    115: "unknown_psk_identity", 116: "certificate_required", 120: "no_application_protocol",
}

GROUPS: dict[int, str] = {
    1: "sect163k1", 2: "sect163r1", 3: "sect163r2", 4: "sect193r1", 5: "sect193r2", 6: "sect233k1",
    7: "sect233r1", 8: "sect239k1", 9: "sect283k1", 10: "sect283r1", 11: "sect409k1", 12: "sect409r1",
    13: "sect571k1", 14: "sect571r1", 15: "secp160k1", 16: "secp160r1", 17: "secp160r2",
    18: "secp192k1", 19: "secp192r1", 20: "secp224k1", 21: "secp224r1", 22: "secp256k1",
    23: "secp256r1", 24: "secp384r1", 25: "secp521r1", 26: "brainpoolP256r1", 27: "brainpoolP384r1",
    28: "brainpoolP512r1", 29: "x25519", 30: "x448", 31: "brainpoolP256r1tls13",
    32: "brainpoolP384r1tls13", 33: "brainpoolP512r1tls13", 256: "ffdhe2048", 257: "ffdhe3072",
    258: "ffdhe4096", 259: "ffdhe6144", 260: "ffdhe8192", 4587: "secp256r1mlkem768",
    4588: "x25519mlkem768", 4589: "secp384r1mlkem1024",
}
