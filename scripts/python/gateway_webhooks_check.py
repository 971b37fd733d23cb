#!/usr/bin/env python3
"""Checks the gateway simulator's signatures with the providers' own SDKs.

Usage: gateway_webhooks_check.py INPUT.json OUTPUT.json

INPUT holds webhooks as the simulator delivered them (raw body and
headers) and the Razorpay checkout success fields, with the secrets they
were signed with (standins/gateway-simulator/tests/python_sdks.rs writes it):

  {"razorpay": {"key_id", "key_secret", "webhook_secret",
                "deliveries": [{"body", "signature", "event_id"}],
                "checkout": [{"razorpay_order_id", "razorpay_payment_id",
                              "razorpay_signature"}]},
   "stripe": {"webhook_secrets": [...], "deliveries": [{"body", "signature"}]},
   "sign": {"payload", "secret"}}

Every delivery must pass `razorpay.Utility.verify_webhook_signature` or
`stripe.Webhook.construct_event` (with each Stripe secret: the simulator
signs one v1 per secret), and fail with a changed body or another secret.
OUTPUT receives a Stripe-Signature header made by the Stripe SDK for
`sign.payload`, for our Rust verifier to check in turn. Prints each check;
exits non-zero on the first failure.
"""

import json
import sys
from importlib.metadata import version

import razorpay
import stripe
from razorpay.errors import SignatureVerificationError as RazorpaySignatureError


def expect_rejected(what, check):
    try:
        check()
    except (RazorpaySignatureError, stripe.SignatureVerificationError):
        return
    raise AssertionError(f"{what} was accepted")


def check_razorpay(spec):
    secret = spec["webhook_secret"]
    utility = razorpay.Utility()
    assert spec["deliveries"], "no Razorpay deliveries to check"
    for d in spec["deliveries"]:
        body, signature = d["body"], d["signature"]
        kind = json.loads(body)["event"]
        assert d["event_id"], f"{kind}: no x-razorpay-event-id"
        assert utility.verify_webhook_signature(body, signature, secret) is True
        expect_rejected(f"razorpay {kind} with a changed body",
                        lambda: utility.verify_webhook_signature(body + " ", signature, secret))
        expect_rejected(f"razorpay {kind} with another secret",
                        lambda: utility.verify_webhook_signature(body, signature, secret + "x"))
        print(f"ok razorpay webhook {kind} ({d['event_id']})")

    client = razorpay.Client(auth=(spec["key_id"], spec["key_secret"]))
    assert spec["checkout"], "no Razorpay checkout signatures to check"
    for fields in spec["checkout"]:
        assert client.utility.verify_payment_signature(dict(fields)) is True
        forged = dict(fields, razorpay_payment_id=fields["razorpay_payment_id"] + "x")
        expect_rejected("razorpay checkout signature for another payment",
                        lambda: client.utility.verify_payment_signature(forged))
        print(f"ok razorpay checkout signature ({fields['razorpay_order_id']})")


def check_stripe(spec):
    secrets = spec["webhook_secrets"]
    assert spec["deliveries"], "no Stripe deliveries to check"
    for d in spec["deliveries"]:
        body, header = d["body"], d["signature"]
        sent = json.loads(body)
        assert header.count("v1=") == len(secrets), f"one v1 per secret: {header}"
        for secret in secrets:
            event = stripe.Webhook.construct_event(body, header, secret)
            assert event.id == sent["id"] and event.type == sent["type"], event
            assert event.data.object.id == sent["data"]["object"]["id"]
        expect_rejected(f"stripe {sent['type']} with a changed body",
                        lambda: stripe.Webhook.construct_event(body + " ", header, secrets[0]))
        expect_rejected(f"stripe {sent['type']} with another secret",
                        lambda: stripe.Webhook.construct_event(body, header, "whsec_other"))
        print(f"ok stripe webhook {sent['type']} ({sent['id']}) with {len(secrets)} secrets")


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    with open(sys.argv[1], encoding="utf-8") as f:
        spec = json.load(f)
    check_razorpay(spec["razorpay"])
    check_stripe(spec["stripe"])
    sign = spec["sign"]
    header = stripe.WebhookSignature.generate_signature_header(sign["payload"], sign["secret"])
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        json.dump({"stripe_signature": header}, f)
    print("ok stripe SDK signed a payload for our verifier")
    print(f"SDKs: razorpay {version('razorpay')}, stripe {version('stripe')}")
    print("all gateway SDK checks passed")


if __name__ == "__main__":
    main()
