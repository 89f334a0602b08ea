#!/usr/bin/env python3
"""Seeded, deterministic generator of the sample customer-support ticket data.

Every file is JSON Lines (UTF-8, one ticket per line) with the keys, in order:
``id, text, label, channel, region, language, product, timestamp``.
``label`` is the routing queue; ``timestamp`` is ISO 8601 UTC ("...Z").

tickets_reference.jsonl (3000 rows, ids ``ref-000001``...)
    The reference / training distribution. Seven queues with a non-uniform
    mix (technical_support ~24% down to cancellation ~8%); channels email,
    chat, web_form and phone_transcript; regions NA/EU/APAC/LATAM; ~85%
    English, the rest Spanish, German and French tickets actually written in
    those languages. English texts come from 16-18 templates per queue,
    slot-filled with products, order/tracking numbers, amounts, dates and
    error codes, plus greetings, sign-offs, angry or terse tones, chat
    lower-casing, phone-call fillers and occasional typos. ~3.5% of English
    rows use deliberately ambiguous two-intent templates and ~1% carry a
    plausible-but-wrong (confusable) label, so accuracy cannot reach 100%.
    Timestamps: 2026-01-01 .. 2026-06-30.

tickets_batch_same.jsonl (1000 rows, ids ``same-000001``...)
    Same generator and distributions as the reference, independent random
    stream, timestamps 2026-07-01 .. 2026-07-31. Drift checks should pass.

tickets_batch_drift.jsonl (1000 rows, ids ``drift-000001``...)
    Timestamps 2026-08-01 .. 2026-08-31, with drift injected on four axes:
      (a) vocabulary - ~80% of rows open with a sentence about products
          launched after the reference period: the "Zephyr Fold" foldable
          phone, its "Zephyr Stylus", the "SnapTranslate" live-translation
          feature and the "FlexPay" installment payment product. None of
          these words occurs anywhere in the reference file;
      (b) label shift - billing rises from ~15% to ~40% (FlexPay problems),
          every other queue shrinks;
      (c) length - each ticket is an opening sentence plus one or two
          queue-specific detail sentences and usually a context sentence,
          ~2-3x the reference character length;
      (d) channel - a new channel value "social_media" (~35% of rows,
          often addressed to @NorthwindCare).

golden.jsonl (ids ``gold-0001``...)
    Hand-written tickets (literal strings in ``GOLDEN`` below, not templated)
    with unambiguous labels: the hand-checked evaluation set. ``product`` is
    the catalogue product named in the text, or "unspecified".

Usage: ``python generate_sample_data.py [--out DIR] [--seed N]``.
Run without arguments it regenerates the shipped files byte-for-byte.
"""

from __future__ import annotations

import argparse
import json
import os
import random
from datetime import datetime, timedelta

DEFAULT_SEED = 20261125

LABELS = [
    "technical_support",
    "billing",
    "account_access",
    "shipping_delivery",
    "returns_refunds",
    "product_inquiry",
    "cancellation",
]
REF_LABEL_WEIGHTS = {
    "technical_support": 24,
    "shipping_delivery": 16,
    "billing": 15,
    "account_access": 14,
    "returns_refunds": 12,
    "product_inquiry": 11,
    "cancellation": 8,
}
DRIFT_LABEL_WEIGHTS = {
    "billing": 40,
    "technical_support": 19,
    "shipping_delivery": 10,
    "returns_refunds": 9,
    "product_inquiry": 9,
    "account_access": 8,
    "cancellation": 5,
}
REF_CHANNELS = {"email": 38, "chat": 30, "web_form": 20, "phone_transcript": 12}
DRIFT_CHANNELS = {"social_media": 35, "email": 24, "chat": 20, "web_form": 13, "phone_transcript": 8}
REGIONS = {"NA": 40, "EU": 30, "APAC": 18, "LATAM": 12}
LANG_BY_REGION = {
    "NA": {"en": 97, "es": 3},
    "EU": {"en": 75, "de": 12, "fr": 9, "es": 4},
    "APAC": {"en": 100},
    "LATAM": {"en": 55, "es": 45},
}
# Hour-of-day weights (UTC) - global support traffic, busier in daytime.
HOUR_WEIGHTS = [2, 1, 1, 1, 2, 3, 4, 6, 8, 9, 9, 9, 8, 9, 10, 10, 9, 8, 7, 6, 5, 4, 3, 2]

AMBIGUOUS_RATE = 0.035  # English rows drawn from AMBIGUOUS (two intents)
LABEL_NOISE_RATE = 0.01  # rows whose label is replaced by a confusable queue
NEW_PRODUCT_RATE = 0.80  # drift rows whose opening sentence is about new products
CONFUSABLE = {
    "billing": "returns_refunds",
    "returns_refunds": "shipping_delivery",
    "shipping_delivery": "returns_refunds",
    "technical_support": "product_inquiry",
    "account_access": "technical_support",
    "product_inquiry": "technical_support",
    "cancellation": "billing",
}

# --------------------------------------------------------------------------- catalogue
DEVICES = [
    "Nimbus X2 Router",
    "Nimbus Mesh Pro",
    "Aurora Smart Speaker",
    "Aurora Mini Display",
    "Vela Watch 3",
    "Vela Fit Band",
    "Strata 14 Laptop",
    "Strata Buds",
]
ALIASES = {
    "Nimbus X2 Router": ["X2 router", "router", "Nimbus X2"],
    "Nimbus Mesh Pro": ["mesh system", "Mesh Pro"],
    "Aurora Smart Speaker": ["smart speaker", "Aurora speaker"],
    "Aurora Mini Display": ["Mini Display", "Aurora display"],
    "Vela Watch 3": ["watch", "Vela watch"],
    "Vela Fit Band": ["fitness band", "Fit Band"],
    "Strata 14 Laptop": ["laptop", "Strata 14"],
    "Strata Buds": ["earbuds", "buds"],
}
PLANS = ["Kite Plus", "Kite Family", "Kite Cloud 2TB", "Aurora Home Protect"]
ACCOUNT_PRODUCTS = ["Northwind account", "Kite app"]
# Drift-only vocabulary (never produced for the reference / same batch).
NEW_PRODUCTS = ["Zephyr Fold", "Zephyr Stylus", "FlexPay", "SnapTranslate"]
NEW_CHANNEL = "social_media"

ERROR_CODES = [
    "E-1042",
    "E-2210",
    "ERR_AUTH_401",
    "ERR_SYNC_503",
    "0x80070005",
    "NW-117",
    "FW-UPD-09",
    "code 43",
    "BT_PAIR_FAIL",
    "DNS_PROBE_FAILED",
    "E-3307",
]
CARRIERS = {
    "NA": ["UPS", "FedEx", "USPS"],
    "EU": ["DHL", "DPD", "GLS"],
    "APAC": ["Australia Post", "SingPost", "DHL"],
    "LATAM": ["Correios", "Estafeta", "DHL"],
}
CURRENCY = {"NA": "$", "EU": "€", "APAC": "A$", "LATAM": "MX$"}
PRICES = [9.99, 14.99, 19.99, 29.0, 49.99, 79.0, 129.99, 199.0, 249.99, 349.0]
FEES = [4.99, 7.5, 10.0, 15.0]
COUNTRIES = ["Canada", "Mexico", "Germany", "Japan", "Brazil", "Australia", "Chile", "Ireland"]
OSES = ["iOS", "Android", "Windows 11", "macOS", "ChromeOS"]
NAMES = {
    "NA": ["Mike", "Jennifer", "Tyrone", "Ashley", "Dave", "Priya", "Kevin", "Megan"],
    "EU": ["Lukas", "Sophie", "Giulia", "Tom", "Anna", "Pierre", "Marta", "Jan"],
    "APAC": ["Wei", "Aiko", "Rahul", "Mei", "Jack", "Siti", "Hiro", "Olivia"],
    "LATAM": ["Carlos", "Lucía", "Diego", "Camila", "João", "Valentina", "Mateo", "Ana"],
}
MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]

# --------------------------------------------------------------------------- English templates
EN_TEMPLATES = {
    "technical_support": [
        "My {device} keeps dropping the connection every few minutes. Already restarted it twice.",
        "{device} won't turn on after the latest firmware update. Light blinks orange and nothing happens.",
        "Getting error {error} when I try to sync my {device} with the app on {os}.",
        "The {device} is stuck on the setup screen and won't get past 'connecting to network'.",
        "hi, wifi on the {device} is super slow since {date}, speed test shows like 3 mbps. any fix?",
        "Bluetooth pairing fails between my {device} and my phone, it says {error}.",
        "Your app crashes every time I open the settings page for my {device}. Using {os}.",
        "The battery on my {device} drains from 100% to zero in about {hours} hours, it used to last days.",
        "Firmware update for the {device} fails at 80% with {error}. Tried three times.",
        "{device} randomly reboots several times a day. Is this a known bug?",
        "Screen on the {device} flickers and then goes black, the device is still on though.",
        "Can't get the {device} to connect to my 5GHz network, only 2.4 works.",
        "Voice commands stopped working on my {device} since {date}. It hears me but does nothing.",
        "The {device} overheats and shuts down when I use it for more than an hour.",
        "How do I factory reset the {device}? It's frozen and the buttons don't respond.",
        "Your {plan} backup keeps failing with {error}, nothing has synced since {date}.",
        "{device} not working. {error}. Fix it please.",
        "The companion app says my {device} is offline even though it's plugged in and the light is solid green.",
    ],
    "billing": [
        "I was charged twice for my {plan} subscription this month, {amount} each time. Please refund the duplicate.",
        "Why did my bill go up to {amount}? Nobody told me about a price increase.",
        "There's a charge of {amount} on my card ending {last4} that I don't recognize.",
        "My payment for the {plan} plan was declined but my card is valid. Can you retry it?",
        "Can you send me an invoice with our company VAT number for the {amount} payment on {date}?",
        "I got charged {amount} for {plan} after I downgraded, the plan should be cheaper now.",
        "How do I update the credit card on file? The old one ending {last4} expired.",
        "You charged me a late fee of {fee} but I paid on time on {date}.",
        "The promo code I used should have given me 20% off but I was billed the full {amount}.",
        "Still being billed for {plan} after the free trial, I thought it was free for 3 months.",
        "I need a copy of my receipt for order {order}, the email never came.",
        "Double charged. Card ending {last4}. {amount} x2. Fix this.",
        "My invoice shows tax added twice, total {amount} instead of what checkout showed.",
        "Please change my billing from monthly to annual for {plan}, and tell me how the proration works.",
        "My bank statement shows a pending authorization of {amount} from you that never dropped off.",
        "Why is there a {fee} service fee on my last invoice? It wasn't there before.",
        "Auto-renew charged my card {amount} for {plan} even though I switched my payment method to PayPal.",
    ],
    "account_access": [
        "I can't log in to my account, it says my password is incorrect but I just reset it.",
        "Password reset email never arrives, checked spam too. My email is {email}.",
        "My account got locked after too many attempts. How do I unlock it?",
        "The two-factor code never comes to my phone so I'm stuck at the login screen.",
        "I changed my phone and lost my authenticator app, now I can't get into my account.",
        "I think someone hacked my account, I got an email that my password was changed and it wasn't me.",
        "Login page just keeps looping back to sign in after I enter my details. Error {error}.",
        "Need to change the email on my account from {email} to my work email, but I can't verify the old one.",
        "The app logs me out every time I close it and asks for my password again.",
        "I have two accounts by mistake, can you merge them? The one I use is {email}.",
        "cant sign in. says account doesnt exist but ive been a customer for {years} years",
        "The verification link in the sign-up email says expired every time I click it.",
        "My username was changed and I don't remember doing it. Please help me get access back.",
        "How do I remove my old phone number from two-step verification? I don't have that number anymore.",
        "I'm locked out of the admin account for our family plan, so my kids can't use the {device} either.",
        "Sign in with Google stopped working for my account, it just shows {error}.",
        "Please reset my account security questions, I can't remember the answers I set.",
    ],
    "shipping_delivery": [
        "Where is my order {order}? It's been {days} days and tracking hasn't updated.",
        "Tracking says delivered but there's no package at my door. Order {order}.",
        "My {device} was supposed to arrive by {date}, what's the delay?",
        "{carrier} tracking {tracking} has been stuck in 'in transit' for a week.",
        "Can I change the delivery address for order {order}? I'm moving next week.",
        "The package arrived but the box was empty except the charger. Where is my {device}?",
        "Only got 1 of the 2 items from order {order}, the {device} is missing.",
        "Do you ship to {country}? I want to order the {device} but checkout won't accept my address.",
        "Driver left my package with a neighbor I don't know. Order {order}, please help.",
        "I paid for express shipping on the {device} and it's still not shipped after {days} days.",
        "When will my {device} actually ship? Order {order} says backordered.",
        "order {order} still not here. this is ridiculous",
        "The courier tried to deliver when I was at work, how do I reschedule with {carrier}?",
        "My order shows shipped but the tracking number {tracking} doesn't work on the {carrier} site.",
        "Package is being held at customs, {carrier} wants me to pay import fees. Is that right?",
        "Can you deliver order {order} to a pickup point instead? I'm never home during the day.",
        "It says out for delivery since yesterday morning and nothing came. Order {order}.",
    ],
    "returns_refunds": [
        "I'd like to return my {device}, it doesn't fit my needs. How do I get a return label?",
        "I sent back the {device} {days} days ago and still haven't received my refund of {amount}.",
        "The {device} arrived damaged, screen is cracked. I want a replacement or a refund.",
        "Received the wrong item. I ordered the {device} and got something else. Order {order}.",
        "Is it too late to return the {device}? I bought it on {date}.",
        "Refund for order {order} was approved but the money isn't back on my card yet.",
        "How long do refunds take to show up? Returned the {device} via {carrier}.",
        "The return label you sent doesn't work, {carrier} won't accept it.",
        "I want to exchange the {device} for a different color, is that possible?",
        "You only refunded {amount} but I paid more than that for the {device}. Where's the rest?",
        "My {device} is defective out of the box, I want my money back.",
        "Can I return an opened {device}? It was a gift and I already have one.",
        "return request for {order} got rejected, why? it's within 30 days",
        "Please process a warranty replacement for my {device}, it stopped charging after {months} months.",
        "I dropped the {device} off at the store for return on {date}, when will I see the refund?",
        "Need an RMA number for the faulty {device} from order {order}.",
        "The refund for my {device} went to my old card that's closed now. Can you send it another way?",
    ],
    "product_inquiry": [
        "Does the {device} support Wi-Fi 7?",
        "What's the difference between the {device} and the {device2}?",
        "Is the {device} compatible with {os}?",
        "Hi, does {plan} include family sharing, and how many devices can I add?",
        "What's the battery life on the {device} with the always-on display enabled?",
        "Is the {device} waterproof? I want to use it while swimming.",
        "Does the {device} come with a charger in the box or do I need to buy one?",
        "Are you planning to release a bigger version of the {device}?",
        "Can I use the {device} without a subscription or do I need {plan}?",
        "How much storage does {plan} give me and can I upgrade later?",
        "Does the {device} work in {country}? Different plug and voltage there.",
        "What warranty comes with the {device}? Can I buy extended coverage?",
        "Do you offer student or bulk discounts on the {device}? We need {n} for our office.",
        "Can the {device} be used together with a second unit on the same network?",
        "Before I buy: does the {device} have parental controls?",
        "what colors does the {device} come in",
        "Which of your products works with Alexa and Google Home? Looking at the {device}.",
    ],
    "cancellation": [
        "Please cancel my {plan} subscription effective immediately.",
        "I want to cancel order {order} before it ships.",
        "How do I cancel {plan}? I can't find the option anywhere in the app.",
        "Cancel my account and delete all my data please.",
        "I'd like to end my {plan} plan at the end of this billing cycle, don't renew it.",
        "I no longer need {plan}, please stop the subscription and confirm by email.",
        "cancel {plan}. not using it anymore.",
        "Tried to cancel online but it keeps redirecting me to an offer page. Just cancel it!",
        "We're moving to another provider, please terminate our {plan} service on {date}.",
        "Can I cancel the {device} preorder and get the deposit back?",
        "I signed up for the free trial of {plan} by mistake, please cancel before I get charged.",
        "Please turn off auto-renewal for {plan} and close the subscription.",
        "I ordered the {device} twice by accident, please cancel one of them. Order {order}.",
        "What's the cancellation fee if I end {plan} early? I want to cancel anyway.",
        "I'm cancelling my {plan} membership, it's too expensive for what I use.",
        "My dad passed away and I need to cancel his {plan} subscription. What do you need from me?",
    ],
}

# Two intents in one ticket; the label is the queue a human agent routed it to.
AMBIGUOUS = [
    (
        "I was charged {amount} for express shipping on order {order} and the package still hasn't arrived. I want that fee back.",
        "billing",
    ),
    ("Can I get money back for this month of {plan}? I couldn't log in for most of it.", "billing"),
    ("Got the {device} but it won't pair, and I was also charged {amount} more than the listed price.", "billing"),
    ("I returned the {device} but you still charge me {amount} every month for {plan}.", "billing"),
    ("Order {order} never arrived so I ordered again, now I've been charged twice.", "billing"),
    ("Tried to upgrade to {plan} but checkout fails with {error} and my card was still charged.", "billing"),
    (
        "My {device} arrived with a cracked screen and now the app won't let me log in to register the warranty.",
        "returns_refunds",
    ),
    (
        "My {device} broke and I'd like a replacement, but the order page says I have no orders. Wrong account?",
        "returns_refunds",
    ),
    ("The {device} keeps crashing, honestly I just want to return it at this point.", "returns_refunds"),
    (
        "My refund of {amount} for order {order} shows as sent but my bank has nothing. Also the next {plan} payment already went out.",
        "returns_refunds",
    ),
    ("Package arrived a week late and the {device} inside was damaged.", "returns_refunds"),
    ("I want to cancel {plan} because the {device} keeps disconnecting every hour.", "cancellation"),
    ("I can't find where to cancel {plan} in the app, the settings page crashes with {error}.", "cancellation"),
    ("Locked out of my account right when my payment was due, now there's a late fee of {fee}.", "account_access"),
    ("I moved to {country} and now I can't sign in or see my {plan} content.", "account_access"),
    (
        "Tracking says delivered but it's not here. If it doesn't show up by {date} just cancel the order and refund me.",
        "shipping_delivery",
    ),
    ("The {device} stopped working after a week. Do I send it back or can you fix it remotely?", "technical_support"),
    ("The delivery guy dropped the box and the {device} won't turn on now.", "technical_support"),
    ("Does {plan} include extended warranty on my {device}? If not I'd rather cancel it.", "product_inquiry"),
    ("Is the {device} supposed to get this hot? If that's normal I want to send it back.", "product_inquiry"),
]

# --------------------------------------------------------------------------- other languages
# (language, queue, template). Queue "drift_billing" / "drift_extra" rows are only used
# for the drift batch: FlexPay billing openers and extra (partly new-product) sentences.
FOREIGN_ROWS = [
    (
        "es",
        "technical_support",
        "Mi {device} se desconecta del wifi cada pocos minutos. Ya lo reinicié dos veces y sigue igual.",
    ),
    (
        "es",
        "technical_support",
        "Me aparece el error {error} cuando intento sincronizar el {device} con la aplicación.",
    ),
    (
        "es",
        "technical_support",
        "El {device} no enciende después de la última actualización, la luz parpadea en naranja.",
    ),
    (
        "es",
        "billing",
        "Me cobraron dos veces la suscripción de {plan} este mes, {amount} cada vez. Por favor devuelvan el cargo duplicado.",
    ),
    ("es", "billing", "Hay un cargo de {amount} en mi tarjeta terminada en {last4} que no reconozco."),
    ("es", "billing", "¿Por qué mi factura subió a {amount}? Nadie me avisó de un aumento de precio."),
    (
        "es",
        "account_access",
        "No puedo iniciar sesión en mi cuenta, dice que la contraseña es incorrecta aunque la acabo de cambiar.",
    ),
    ("es", "account_access", "Nunca me llega el correo para restablecer la contraseña, ya revisé la carpeta de spam."),
    ("es", "account_access", "Mi cuenta está bloqueada por demasiados intentos. ¿Cómo la desbloqueo?"),
    (
        "es",
        "shipping_delivery",
        "¿Dónde está mi pedido {order}? Ya pasaron {days} días y el seguimiento no se actualiza.",
    ),
    ("es", "shipping_delivery", "El seguimiento dice entregado pero no recibí ningún paquete. Pedido {order}."),
    ("es", "shipping_delivery", "Mi {device} debía llegar el {date} y todavía no llega. ¿Qué pasó con el envío?"),
    (
        "es",
        "returns_refunds",
        "Quiero devolver mi {device}, no es lo que esperaba. ¿Cómo consigo la etiqueta de devolución?",
    ),
    ("es", "returns_refunds", "Devolví el {device} hace {days} días y todavía no recibo el reembolso de {amount}."),
    ("es", "returns_refunds", "El {device} llegó dañado, la pantalla está rota. Quiero un reemplazo o el reembolso."),
    ("es", "product_inquiry", "¿El {device} es compatible con {os}?"),
    ("es", "product_inquiry", "¿Qué diferencia hay entre el {device} y el {device2}?"),
    (
        "es",
        "product_inquiry",
        "¿El plan {plan} incluye uso compartido en familia? ¿Cuántos dispositivos puedo agregar?",
    ),
    ("es", "cancellation", "Por favor cancelen mi suscripción de {plan} de inmediato."),
    ("es", "cancellation", "Quiero cancelar el pedido {order} antes de que lo envíen."),
    ("es", "cancellation", "¿Cómo cancelo {plan}? No encuentro la opción en la aplicación."),
    (
        "es",
        "drift_billing",
        "Compré el Zephyr Fold con FlexPay en 6 cuotas, pero me cobraron el total de {amount} de una vez en la tarjeta terminada en {last4}.",
    ),
    (
        "es",
        "drift_billing",
        "FlexPay me cobró dos veces la cuota de {amount} de este mes y además me aplicó un recargo por mora.",
    ),
    (
        "es",
        "drift_extra",
        "Ya probé todo lo que indica el centro de ayuda y nada funcionó. Es la segunda vez que les escribo por este problema.",
    ),
    (
        "es",
        "drift_extra",
        "Necesito una solución lo antes posible, tengo todos los comprobantes y capturas de pantalla si los necesitan.",
    ),
    ("es", "drift_extra", "Uso un Zephyr Fold nuevo y pago con FlexPay, por si esa información les sirve."),
    (
        "de",
        "technical_support",
        "Mein {device} verliert alle paar Minuten die WLAN-Verbindung. Einen Neustart habe ich schon zweimal versucht.",
    ),
    ("de", "technical_support", "Beim Synchronisieren von {device} mit der App kommt immer der Fehler {error}."),
    ("de", "technical_support", "Seit dem letzten Firmware-Update lässt sich {device} nicht mehr einschalten."),
    (
        "de",
        "billing",
        "Mir wurde das {plan}-Abo diesen Monat doppelt berechnet, jeweils {amount}. Bitte erstatten Sie die doppelte Abbuchung.",
    ),
    (
        "de",
        "billing",
        "Auf meiner Karte mit der Endung {last4} ist eine Abbuchung über {amount}, die ich nicht zuordnen kann.",
    ),
    ("de", "billing", "Bitte senden Sie mir eine Rechnung mit unserer USt-IdNr. für die Zahlung vom {date}."),
    (
        "de",
        "account_access",
        "Ich kann mich nicht in mein Konto einloggen, obwohl ich das Passwort gerade zurückgesetzt habe.",
    ),
    ("de", "account_access", "Die E-Mail zum Zurücksetzen des Passworts kommt nie an, auch nicht im Spam-Ordner."),
    ("de", "account_access", "Mein Konto wurde nach zu vielen Anmeldeversuchen gesperrt. Wie kann ich es entsperren?"),
    (
        "de",
        "shipping_delivery",
        "Wo bleibt meine Bestellung {order}? Seit {days} Tagen gibt es keine Aktualisierung der Sendungsverfolgung.",
    ),
    (
        "de",
        "shipping_delivery",
        "Laut Sendungsverfolgung wurde das Paket zugestellt, aber bei mir ist nichts angekommen. Bestellung {order}.",
    ),
    (
        "de",
        "shipping_delivery",
        "Kann ich die Lieferadresse für Bestellung {order} noch ändern? Ich ziehe nächste Woche um.",
    ),
    ("de", "returns_refunds", "Ich möchte {device} zurückschicken. Wie bekomme ich ein Rücksendeetikett?"),
    (
        "de",
        "returns_refunds",
        "Ich habe {device} vor {days} Tagen zurückgeschickt und noch keine Erstattung über {amount} erhalten.",
    ),
    (
        "de",
        "returns_refunds",
        "{device} kam beschädigt an, das Display ist gesprungen. Ich möchte einen Ersatz oder mein Geld zurück.",
    ),
    ("de", "product_inquiry", "Ist {device} mit {os} kompatibel?"),
    ("de", "product_inquiry", "Was ist der Unterschied zwischen {device} und {device2}?"),
    ("de", "product_inquiry", "Ist {device} wasserdicht? Ich möchte es beim Schwimmen benutzen."),
    ("de", "cancellation", "Bitte kündigen Sie mein {plan}-Abonnement zum nächstmöglichen Zeitpunkt."),
    ("de", "cancellation", "Ich möchte die Bestellung {order} stornieren, bevor sie versendet wird."),
    ("de", "cancellation", "Wie kann ich {plan} kündigen? Ich finde die Option in der App nicht."),
    (
        "de",
        "drift_billing",
        "Ich habe das Zephyr Fold mit FlexPay in 6 Raten gekauft, aber meine Karte mit der Endung {last4} wurde sofort mit dem vollen Betrag von {amount} belastet.",
    ),
    (
        "de",
        "drift_billing",
        "FlexPay hat die Monatsrate von {amount} doppelt abgebucht und zusätzlich eine Mahngebühr berechnet.",
    ),
    (
        "de",
        "drift_extra",
        "Ich habe bereits alle Schritte aus dem Hilfe-Center ausprobiert, leider ohne Erfolg. Das ist schon meine zweite Anfrage zu diesem Problem.",
    ),
    (
        "de",
        "drift_extra",
        "Bitte melden Sie sich so schnell wie möglich, alle Belege und Screenshots schicke ich Ihnen gerne.",
    ),
    ("de", "drift_extra", "Ich nutze ein neues Zephyr Fold und bezahle mit FlexPay, falls das relevant ist."),
    (
        "fr",
        "technical_support",
        "Mon {device} perd la connexion wifi toutes les quelques minutes. Je l'ai déjà redémarré deux fois.",
    ),
    (
        "fr",
        "technical_support",
        "J'obtiens l'erreur {error} quand j'essaie de synchroniser le {device} avec l'application.",
    ),
    ("fr", "technical_support", "Le {device} ne s'allume plus depuis la dernière mise à jour du firmware."),
    (
        "fr",
        "billing",
        "J'ai été débité deux fois pour l'abonnement {plan} ce mois-ci, {amount} à chaque fois. Merci de rembourser le doublon.",
    ),
    (
        "fr",
        "billing",
        "Il y a un prélèvement de {amount} sur ma carte se terminant par {last4} que je ne reconnais pas.",
    ),
    ("fr", "billing", "Pourquoi ma facture est-elle passée à {amount} ? Personne ne m'a prévenu d'une hausse de prix."),
    (
        "fr",
        "account_access",
        "Je n'arrive pas à me connecter à mon compte, le mot de passe est refusé alors que je viens de le réinitialiser.",
    ),
    ("fr", "account_access", "Je ne reçois jamais l'e-mail de réinitialisation du mot de passe, même dans les spams."),
    ("fr", "account_access", "Mon compte est bloqué après trop de tentatives. Comment le débloquer ?"),
    ("fr", "shipping_delivery", "Où en est ma commande {order} ? Cela fait {days} jours et le suivi n'a pas bougé."),
    ("fr", "shipping_delivery", "Le suivi indique livré mais je n'ai reçu aucun colis. Commande {order}."),
    ("fr", "shipping_delivery", "Mon {device} devait arriver le {date}, pourquoi ce retard de livraison ?"),
    ("fr", "returns_refunds", "Je souhaite retourner mon {device}. Comment obtenir une étiquette de retour ?"),
    (
        "fr",
        "returns_refunds",
        "J'ai renvoyé le {device} il y a {days} jours et je n'ai toujours pas reçu le remboursement de {amount}.",
    ),
    (
        "fr",
        "returns_refunds",
        "Le {device} est arrivé endommagé, l'écran est fissuré. Je veux un remplacement ou un remboursement.",
    ),
    ("fr", "product_inquiry", "Le {device} est-il compatible avec {os} ?"),
    ("fr", "product_inquiry", "Quelle est la différence entre le {device} et le {device2} ?"),
    ("fr", "product_inquiry", "L'abonnement {plan} inclut-il le partage familial ?"),
    ("fr", "cancellation", "Merci de résilier mon abonnement {plan} immédiatement."),
    ("fr", "cancellation", "Je voudrais annuler la commande {order} avant son expédition."),
    ("fr", "cancellation", "Comment résilier {plan} ? Je ne trouve pas l'option dans l'application."),
    (
        "fr",
        "drift_billing",
        "J'ai acheté le Zephyr Fold avec FlexPay en 6 mensualités, mais ma carte se terminant par {last4} a été débitée de la totalité, soit {amount}.",
    ),
    (
        "fr",
        "drift_billing",
        "FlexPay a prélevé deux fois la mensualité de {amount} ce mois-ci et m'a en plus facturé des frais de retard.",
    ),
    (
        "fr",
        "drift_extra",
        "J'ai déjà suivi toutes les étapes du centre d'aide, sans résultat. C'est la deuxième fois que je vous contacte pour ce problème.",
    ),
    (
        "fr",
        "drift_extra",
        "Merci de me répondre rapidement, je peux vous envoyer tous les justificatifs et des captures d'écran si besoin.",
    ),
    ("fr", "drift_extra", "J'utilise un Zephyr Fold neuf et je paie avec FlexPay, si cela peut vous aider."),
]
FOREIGN_TEMPLATES: dict = {}
for _lang, _queue, _tpl in FOREIGN_ROWS:
    FOREIGN_TEMPLATES.setdefault(_lang, {}).setdefault(_queue, []).append(_tpl)

# Email greetings/sign-offs go on their own lines; other channels use the short openers.
GREETINGS = {
    "en": ["Hi,", "Hello,", "Hi there,", "Good morning,", "Hello team,", "Hey,", "Dear support,"],
    "es": ["Hola,", "Buenos días,", "Buenas tardes,"],
    "de": ["Hallo,", "Guten Tag,", "Sehr geehrte Damen und Herren,"],
    "fr": ["Bonjour,", "Bonsoir,", "Bonjour à l'équipe support,"],
}
SHORT_GREETINGS = {
    "en": ["hi!", "Hi!", "Hello!", "hey -", "Hi there."],
    "es": ["¡Hola!", "Hola."],
    "de": ["Hallo!", "Guten Tag."],
    "fr": ["Bonjour !", "Bonjour."],
}
SIGNOFFS = {
    "en": [
        "Thanks, {name}",
        "Thank you!",
        "Regards, {name}",
        "Cheers",
        "Best, {name}",
        "Thanks in advance for your help.",
        "Appreciate any help. {name}",
    ],
    "es": ["Gracias, {name}", "Saludos.", "Un saludo, {name}"],
    "de": ["Danke, {name}", "Viele Grüße, {name}", "Mit freundlichen Grüßen, {name}"],
    "fr": ["Merci, {name}", "Cordialement, {name}", "Bonne journée."],
}
GREETING_RATE = {"email": 0.65, "web_form": 0.15, "chat": 0.3, "social_media": 0.05}
SIGNOFF_RATE = {"email": 0.55, "web_form": 0.1, "social_media": 0.05}
ANGRY_OPENERS = [
    "This is ridiculous.",
    "Seriously, third time asking.",
    "Really frustrated right now.",
    "Unacceptable.",
    "I'm losing my patience here.",
]
URGENT_CLOSERS = ["Please respond ASAP.", "Please get back to me soon.", "Waiting for an answer."]
PHONE_FILLERS = ["", "yeah hi, ", "um, hi, so ", "hello, yes, ", "so basically ", "right, so "]
MISSPELLINGS = {
    "received": "recieved",
    "account": "acount",
    "password": "pasword",
    "address": "adress",
    "refund": "refun",
    "subscription": "subscripton",
    "because": "becuase",
    "delivered": "deliverd",
    "cancel": "cancell",
    "charged": "chargd",
    "tracking": "traking",
    "immediately": "immediatly",
}

# --------------------------------------------------------------------------- drift material
# (template, product) - opening sentences about the new products, per queue.
DRIFT_OPENERS = {
    "billing": [
        (
            "I bought the Zephyr Fold with FlexPay in 6 installments, but my card ending {last4} was charged the full {amount} upfront.",
            "FlexPay",
        ),
        ("My FlexPay installment of {amount} for {month} was taken twice from my account.", "FlexPay"),
        ("FlexPay says my payment of {amount} is overdue but my bank shows it went out on {date}.", "FlexPay"),
        ("There is a FlexPay late fee of {fee} on my statement even though autopay is turned on.", "FlexPay"),
        ("FlexPay approved me for 12 monthly payments but my invoice shows 6 payments of {amount}.", "FlexPay"),
        ("I paid off my FlexPay balance early but I'm still being billed {amount} a month.", "FlexPay"),
        ("I was charged {amount} for SnapTranslate Pro on my Zephyr Fold and I never subscribed to it.", "Zephyr Fold"),
        (
            "The FlexPay interest on my Zephyr Fold purchase doesn't match the 0% APR shown at checkout, I'm paying {amount} more than expected.",
            "FlexPay",
        ),
    ],
    "technical_support": [
        (
            "My new Zephyr Fold freezes whenever I unfold it and the inner screen stays black until I restart it.",
            "Zephyr Fold",
        ),
        (
            "SnapTranslate on my Zephyr Fold stops translating about a minute into every call and shows {error}.",
            "Zephyr Fold",
        ),
        (
            "The Zephyr Stylus won't pair with my Zephyr Fold, Bluetooth shows {error} every time I try.",
            "Zephyr Stylus",
        ),
        (
            "Since the latest update the Zephyr Fold inner display has a line of dead pixels along the hinge and touch stops responding on the left half.",
            "Zephyr Fold",
        ),
        (
            "SnapTranslate live captions on the Zephyr Fold are several seconds out of sync and sometimes pick the wrong language.",
            "Zephyr Fold",
        ),
        ("My Zephyr Fold won't connect to my {device}, it keeps saying {error}.", "Zephyr Fold"),
    ],
    "account_access": [
        (
            "I can't sign in to FlexPay with my Northwind account, it asks me to verify my identity and then fails with {error}.",
            "FlexPay",
        ),
        (
            "After setting up my Zephyr Fold, face unlock for my Northwind account stopped working and now I'm locked out.",
            "Zephyr Fold",
        ),
        (
            "The FlexPay app says my email {email} is already linked to another account and won't let me log in.",
            "FlexPay",
        ),
    ],
    "shipping_delivery": [
        (
            "My Zephyr Fold preorder {order} was supposed to ship on launch day and the tracking still says label created.",
            "Zephyr Fold",
        ),
        (
            "{carrier} shows my Zephyr Fold as delivered to a parcel locker I never selected, order {order}.",
            "Zephyr Fold",
        ),
        (
            "I ordered the Zephyr Fold bundle with the Zephyr Stylus but only the phone arrived, the stylus is missing from order {order}.",
            "Zephyr Stylus",
        ),
        ("The Zephyr Fold I bought with FlexPay has been stuck at the {carrier} depot for {days} days.", "Zephyr Fold"),
    ],
    "returns_refunds": [
        ("I want to return my Zephyr Fold, the crease in the screen is much worse than in the ads.", "Zephyr Fold"),
        (
            "I returned the Zephyr Fold within 14 days but FlexPay is still collecting my installments of {amount}.",
            "FlexPay",
        ),
        ("The Zephyr Stylus arrived with a bent tip, I want a replacement or my money back.", "Zephyr Stylus"),
        ("My Zephyr Fold was dead on arrival and I need a return label, order {order}.", "Zephyr Fold"),
    ],
    "product_inquiry": [
        ("Does SnapTranslate on the Zephyr Fold work offline, and which languages does it support?", "Zephyr Fold"),
        (
            "Can I use FlexPay to buy the Zephyr Fold if I live in {country}, and is there interest on the 12-month plan?",
            "FlexPay",
        ),
        ("Is the Zephyr Stylus compatible with the {device} or only with the Zephyr Fold?", "Zephyr Stylus"),
        ("How durable is the Zephyr Fold hinge, and is screen damage covered by {plan}?", "Zephyr Fold"),
    ],
    "cancellation": [
        ("Please cancel my FlexPay plan, I paid off the Zephyr Fold in full with my card on {date}.", "FlexPay"),
        ("I want to cancel my Zephyr Fold preorder {order} before it ships.", "Zephyr Fold"),
        (
            "Cancel the SnapTranslate Pro add-on on my Zephyr Fold, I never meant to keep it after the trial.",
            "Zephyr Fold",
        ),
    ],
}
DRIFT_DETAILS = {
    "billing": [
        "I have the bank statement and the order confirmation if you need them.",
        "Please refund the extra {amount} and send me the corrected payment schedule.",
        "The charge has been pending since {date} and my available balance is now too low for my other bills.",
    ],
    "technical_support": [
        "I already did a factory reset and updated to the newest software, no change.",
        "It happens on both Wi-Fi and mobile data, and safe mode doesn't help either.",
        "I can send you a screen recording that shows the problem happening.",
    ],
    "account_access": [
        "I've reset my password three times today and the verification code never arrives.",
        "The login screen shows {error} right after I enter the code.",
        "I need access back today because all my payment details are saved in that account.",
    ],
    "shipping_delivery": [
        "The tracking number is {tracking} and it hasn't moved since {date}.",
        "I was home all day and no driver came to the door or called.",
        "I paid {amount} for express delivery so I'd have it before my trip.",
    ],
    "returns_refunds": [
        "I still have the original box, all the accessories and the receipt.",
        "The store told me to contact online support because I ordered it on the website.",
        "Please tell me whether I get the refund on my card or as store credit.",
    ],
    "product_inquiry": [
        "I'm comparing it with other brands before I decide and this is the deciding factor.",
        "The product page doesn't say anything about this and the chat bot couldn't answer.",
        "I'd be buying {n} of them for my team, so I need to be sure.",
    ],
    "cancellation": [
        "Please confirm in writing that no further payments will be taken.",
        "I don't want any retention offers, I just want it closed.",
        "I'd like confirmation of the final charge and the date the service ends.",
    ],
}
DRIFT_CONTEXT = [
    "This is my second time contacting you about this; the last agent promised a callback within 48 hours that never happened.",
    "I've been a customer for {years} years and I've never had this kind of problem before.",
    "Please get back to me as soon as possible, I need this sorted before the weekend.",
    "My order number is {order} in case you need it.",
    "I already went through every step in the help center article and nothing changed.",
    "I'm writing from my partner's phone because mine is the one with the problem.",
]
SOCIAL_HANDLE = "@NorthwindCare"
HASHTAGS = ["#fail", "#customerservice", "#help", "#notimpressed", "#support"]

# --------------------------------------------------------------------------- golden set
# Hand-written, hand-checked tickets: (text, label, channel, region, language).
GOLDEN = [
    # technical_support
    (
        "Hi, my Nimbus X2 Router restarts by itself every evening around 9pm and the whole house loses internet for five minutes. Firmware is up to date. Any idea what's causing this?",
        "technical_support",
        "email",
        "NA",
        "en",
    ),
    (
        "the aurora smart speaker doesnt respond to the wake word anymore, mic light is on but nothing happens",
        "technical_support",
        "chat",
        "NA",
        "en",
    ),
    (
        "Vela Watch 3 stopped counting steps after the update yesterday. Heart rate still works.",
        "technical_support",
        "web_form",
        "EU",
        "en",
    ),
    (
        "Caller: yeah so my laptop, the Strata 14, the screen goes black when I close and reopen the lid and I have to hold the power button to get it back",
        "technical_support",
        "phone_transcript",
        "APAC",
        "en",
    ),
    (
        "Kite Cloud 2TB isn't backing up my photos anymore. The app shows ERR_SYNC_503 on every attempt since Monday.",
        "technical_support",
        "email",
        "EU",
        "en",
    ),
    (
        "Strata Buds: the left earbud won't connect, only the right one plays audio. Already reset them in the case.",
        "technical_support",
        "chat",
        "NA",
        "en",
    ),
    (
        "Hello, the Nimbus Mesh Pro satellite unit keeps showing a red light and devices near it get no signal. The main unit is fine.",
        "technical_support",
        "web_form",
        "APAC",
        "en",
    ),
    (
        "Aurora Mini Display is stuck on the logo screen after a power cut. Unplugging it for an hour didn't help.",
        "technical_support",
        "email",
        "LATAM",
        "en",
    ),
    (
        "Mi Vela Fit Band no sincroniza con la aplicación desde ayer. Me aparece el error BT_PAIR_FAIL cada vez que lo intento.",
        "technical_support",
        "chat",
        "LATAM",
        "es",
    ),
    (
        "Mein Nimbus X2 Router verliert jede Nacht die Internetverbindung und muss jeden Morgen manuell neu gestartet werden.",
        "technical_support",
        "email",
        "EU",
        "de",
    ),
    # billing
    (
        "I was billed $14.99 twice on March 3 for Kite Plus. Please reverse one of the charges.",
        "billing",
        "email",
        "NA",
        "en",
    ),
    (
        "Why does my invoice for Kite Family say €19.99 when your website says €15.99 per month?",
        "billing",
        "web_form",
        "EU",
        "en",
    ),
    (
        "There's a $129.99 charge from Northwind on my credit card statement and I haven't bought anything from you this year.",
        "billing",
        "phone_transcript",
        "NA",
        "en",
    ),
    (
        "hey, how do i swap the card on file? my old visa expired and the Kite Plus renewal payment failed",
        "billing",
        "chat",
        "NA",
        "en",
    ),
    (
        "Could you email me a VAT invoice for the Strata 14 Laptop I bought for my business? Company name: Lindqvist Design AB.",
        "billing",
        "email",
        "EU",
        "en",
    ),
    (
        "I was charged a $7.50 late fee even though my payment went through on the due date. Please remove it.",
        "billing",
        "web_form",
        "NA",
        "en",
    ),
    (
        "My discount code SPRING20 was accepted at checkout but my card was charged the full A$249.",
        "billing",
        "email",
        "APAC",
        "en",
    ),
    (
        "Caller: hi, I switched from monthly to yearly on Aurora Home Protect and got charged for both, the monthly fee and the full year",
        "billing",
        "phone_transcript",
        "NA",
        "en",
    ),
    (
        "On m'a facturé deux fois l'abonnement Kite Plus ce mois-ci. Pouvez-vous rembourser le prélèvement en double ?",
        "billing",
        "email",
        "EU",
        "fr",
    ),
    (
        "Me cobraron MX$399 por Kite Family, pero yo tengo el plan individual. ¿Pueden corregir la factura?",
        "billing",
        "web_form",
        "LATAM",
        "es",
    ),
    # account_access
    (
        "I keep getting 'incorrect password' even right after resetting it. I can't get into my account at all.",
        "account_access",
        "email",
        "NA",
        "en",
    ),
    (
        "no reset email is coming through, tried 4 times and checked the junk folder. can someone help me get into my account",
        "account_access",
        "chat",
        "EU",
        "en",
    ),
    (
        "My account was locked after I mistyped my password a few times. How long until I can try again?",
        "account_access",
        "web_form",
        "APAC",
        "en",
    ),
    (
        "I got a notification that my password was changed from a device in another country. That wasn't me. Please secure my account.",
        "account_access",
        "email",
        "NA",
        "en",
    ),
    (
        "New phone, and the authenticator app didn't transfer. I can't pass two-factor verification to log in.",
        "account_access",
        "chat",
        "NA",
        "en",
    ),
    (
        "Caller: I'm trying to sign into the Kite app and it says my email isn't registered, but I've had an account for six years",
        "account_access",
        "phone_transcript",
        "LATAM",
        "en",
    ),
    (
        "The SMS verification code never arrives when I try to log in. My phone number hasn't changed.",
        "account_access",
        "web_form",
        "EU",
        "en",
    ),
    (
        "Sign in with Apple worked until last week, now it just loops back to the login page.",
        "account_access",
        "email",
        "APAC",
        "en",
    ),
    (
        "Ich kann mich nicht mehr in mein Konto einloggen. Der Bestätigungscode per SMS kommt nie an.",
        "account_access",
        "web_form",
        "EU",
        "de",
    ),
    (
        "Je n'arrive plus à me connecter à mon compte : le lien de réinitialisation du mot de passe indique qu'il a expiré.",
        "account_access",
        "email",
        "EU",
        "fr",
    ),
    # shipping_delivery
    (
        "My order #4471920 was supposed to arrive last Friday. Tracking hasn't updated in six days.",
        "shipping_delivery",
        "email",
        "NA",
        "en",
    ),
    (
        "The tracking says delivered at 2:14 pm but nothing was left at my door or with the building reception.",
        "shipping_delivery",
        "web_form",
        "NA",
        "en",
    ),
    (
        "Can you change the shipping address on order NW-558201? I entered my old apartment by mistake and it hasn't shipped yet.",
        "shipping_delivery",
        "chat",
        "EU",
        "en",
    ),
    (
        "DHL has had my package at the Leipzig hub since the 12th. When will it actually be delivered?",
        "shipping_delivery",
        "email",
        "EU",
        "en",
    ),
    (
        "My order came in two boxes but only one arrived. The Strata Buds are still missing from the shipment.",
        "shipping_delivery",
        "web_form",
        "APAC",
        "en",
    ),
    (
        "Caller: hi, I paid for next-day delivery on the Nimbus Mesh Pro and it still hasn't even shipped, it's been three days",
        "shipping_delivery",
        "phone_transcript",
        "NA",
        "en",
    ),
    (
        "The courier left a card saying they couldn't deliver. How do I arrange redelivery for Saturday?",
        "shipping_delivery",
        "chat",
        "EU",
        "en",
    ),
    (
        "Package stuck in customs in Sydney for 10 days, Australia Post says they're waiting on paperwork from you.",
        "shipping_delivery",
        "email",
        "APAC",
        "en",
    ),
    (
        "¿Dónde está mi pedido? Lo compré hace dos semanas y el número de seguimiento de Estafeta no muestra ningún movimiento.",
        "shipping_delivery",
        "chat",
        "LATAM",
        "es",
    ),
    (
        "Mon colis est indiqué comme livré, mais je n'ai rien reçu et mes voisins non plus.",
        "shipping_delivery",
        "web_form",
        "EU",
        "fr",
    ),
    # returns_refunds
    (
        "I'd like to return the Aurora Smart Speaker I bought two weeks ago. It's still unopened. Can you send a return label?",
        "returns_refunds",
        "email",
        "NA",
        "en",
    ),
    (
        "I mailed back the Vela Fit Band on May 2 and UPS shows you received it May 6, but my refund of $79 hasn't come through.",
        "returns_refunds",
        "web_form",
        "NA",
        "en",
    ),
    (
        "The Strata 14 Laptop arrived with a cracked hinge. I want a replacement unit, not a repair.",
        "returns_refunds",
        "email",
        "EU",
        "en",
    ),
    (
        "got the wrong color strata buds, ordered black and got white. how do i swap them",
        "returns_refunds",
        "chat",
        "NA",
        "en",
    ),
    (
        "Your return portal rejects my order as outside the return window, but it was delivered 20 days ago and you offer 30.",
        "returns_refunds",
        "web_form",
        "APAC",
        "en",
    ),
    (
        "Caller: I returned the Aurora Mini Display at the store and they said the refund would take a week, it's been a month now",
        "returns_refunds",
        "phone_transcript",
        "NA",
        "en",
    ),
    (
        "My refund was only half of what I paid for the Nimbus Mesh Pro. I returned the full kit, all three units.",
        "returns_refunds",
        "email",
        "LATAM",
        "en",
    ),
    (
        "The return label you emailed is for the wrong country and the post office won't take the parcel back to you.",
        "returns_refunds",
        "email",
        "EU",
        "en",
    ),
    (
        "Quiero devolver el Aurora Smart Speaker porque llegó con el altavoz roto. ¿Me pueden enviar una etiqueta de devolución?",
        "returns_refunds",
        "email",
        "LATAM",
        "es",
    ),
    (
        "Ich habe die Vela Watch 3 vor drei Wochen zurückgeschickt und warte immer noch auf die Erstattung.",
        "returns_refunds",
        "email",
        "EU",
        "de",
    ),
    # product_inquiry
    (
        "Does the Nimbus Mesh Pro support Wi-Fi 6E, and how many units would I need for a three-floor house?",
        "product_inquiry",
        "web_form",
        "NA",
        "en",
    ),
    ("Is the Vela Watch 3 water resistant enough for swimming in the ocean?", "product_inquiry", "chat", "APAC", "en"),
    (
        "What's the difference between Kite Plus and Kite Family apart from the number of users?",
        "product_inquiry",
        "email",
        "EU",
        "en",
    ),
    ("Can the Aurora Smart Speaker be used as a Bluetooth speaker for my TV?", "product_inquiry", "chat", "NA", "en"),
    (
        "before buying: does the strata 14 laptop have a backlit keyboard and usb-c charging?",
        "product_inquiry",
        "chat",
        "EU",
        "en",
    ),
    (
        "Do you sell replacement ear tips for the Strata Buds in a smaller size?",
        "product_inquiry",
        "web_form",
        "NA",
        "en",
    ),
    (
        "Will the Aurora Mini Display work with Google Home or only with your own app?",
        "product_inquiry",
        "email",
        "LATAM",
        "en",
    ),
    (
        "Caller: I'm thinking of getting the Vela Fit Band for my mum, does it need a smartphone to work or can it run on its own",
        "product_inquiry",
        "phone_transcript",
        "APAC",
        "en",
    ),
    (
        "Est-ce que le Nimbus X2 Router est compatible avec la fibre optique ? Je voudrais l'acheter.",
        "product_inquiry",
        "email",
        "EU",
        "fr",
    ),
    (
        "Funktioniert das Aurora Mini Display auch mit Alexa? Ich überlege, es zu kaufen.",
        "product_inquiry",
        "web_form",
        "EU",
        "de",
    ),
    # cancellation
    (
        "Please cancel my Kite Plus subscription at the end of the current billing period. I don't want it to renew.",
        "cancellation",
        "email",
        "NA",
        "en",
    ),
    (
        "I want to cancel order NW-730114, I picked the wrong model. It hasn't shipped yet.",
        "cancellation",
        "web_form",
        "EU",
        "en",
    ),
    ("cancel aurora home protect please, i sold the house", "cancellation", "chat", "NA", "en"),
    (
        "Caller: I'd like to cancel the Kite Family plan, we're switching to another service next month",
        "cancellation",
        "phone_transcript",
        "APAC",
        "en",
    ),
    (
        "Every time I try to cancel Kite Cloud 2TB online I get sent to a discount offer. I don't want the offer, just cancel it.",
        "cancellation",
        "email",
        "NA",
        "en",
    ),
    (
        "I signed up for the Kite Plus free trial yesterday by accident. Please cancel it before the first charge.",
        "cancellation",
        "chat",
        "EU",
        "en",
    ),
    (
        "My mother passed away in April. I need to cancel her Aurora Home Protect subscription, what documents do you need?",
        "cancellation",
        "email",
        "NA",
        "en",
    ),
    (
        "Please close my Northwind account and cancel all my subscriptions, I'm not using any of your services anymore.",
        "cancellation",
        "web_form",
        "APAC",
        "en",
    ),
    (
        "Por favor cancelen mi suscripción a Kite Plus. Ya no la uso y no quiero que se renueve.",
        "cancellation",
        "web_form",
        "LATAM",
        "es",
    ),
    ("Je souhaite résilier mon abonnement Kite Family à la fin du mois.", "cancellation", "email", "EU", "fr"),
]


# --------------------------------------------------------------------------- helpers
def wchoice(rng: random.Random, weights: dict) -> str:
    return rng.choices(list(weights), weights=list(weights.values()), k=1)[0]


def exact_labels(rng: random.Random, weights: dict, n: int) -> list:
    """n labels in exactly the weighted proportions (largest remainder), shuffled."""
    total = sum(weights.values())
    counts = {k: n * w // total for k, w in weights.items()}
    by_remainder = sorted(weights, key=lambda k: -(n * weights[k] % total))
    for k in by_remainder[: n - sum(counts.values())]:
        counts[k] += 1
    labels = [k for k in weights for _ in range(counts[k])]
    rng.shuffle(labels)
    return labels


def rand_ts(rng: random.Random, start: datetime, ndays: int) -> datetime:
    hour = rng.choices(range(24), weights=HOUR_WEIGHTS, k=1)[0]
    return start + timedelta(
        days=rng.randrange(ndays), hours=hour, minutes=rng.randrange(60), seconds=rng.randrange(60)
    )


def fmt_ts(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def money(value: float, region: str, lang: str) -> str:
    num = f"{value:.0f}" if value == int(value) else f"{value:.2f}"
    if region == "EU" and lang != "en":
        return num.replace(".", ",") + " €"
    return CURRENCY[region] + num


def fmt_date(rng: random.Random, day: datetime, region: str, lang: str) -> str:
    if lang == "de":
        return f"{day.day:02d}.{day.month:02d}."
    if lang in ("es", "fr"):
        return f"{day.day:02d}/{day.month:02d}"
    if region == "NA" and rng.random() < 0.4:
        return f"{day.month}/{day.day}"
    if region == "NA":
        return f"{MONTHS[day.month - 1][:3]} {day.day}"
    return f"{day.day} {MONTHS[day.month - 1]}"


def make_slots(rng: random.Random, region: str, lang: str, ts: datetime) -> dict:
    """All slot values for one ticket (cheap, so always computed in a fixed order)."""
    device = rng.choice(DEVICES)
    name = rng.choice(NAMES[region])
    order = rng.choice(
        [
            f"#{rng.randint(1000000, 9999999)}",
            f"NW-{rng.randint(100000, 999999)}",
            f"{rng.randint(100, 999)}-{rng.randint(1000000, 9999999)}",
        ]
    )
    return {
        "_device": device,
        "device": rng.choice(ALIASES[device]) if (lang == "en" and rng.random() < 0.2) else device,
        "device2": rng.choice([d for d in DEVICES if d != device]),
        "plan": rng.choice(PLANS),
        "order": order,
        "tracking": f"{rng.choice(['1Z', 'JD', 'LX', 'RR'])}{rng.randint(10**9, 10**10 - 1)}",
        "amount": money(rng.choice(PRICES), region, lang),
        "fee": money(rng.choice(FEES), region, lang),
        "date": fmt_date(rng, ts - timedelta(days=rng.randint(1, 20)), region, lang),
        "month": MONTHS[ts.month - 1],
        "error": rng.choice(ERROR_CODES),
        "carrier": rng.choice(CARRIERS[region]),
        "country": rng.choice(COUNTRIES),
        "os": rng.choice(OSES),
        "last4": f"{rng.randint(0, 9999):04d}",
        "days": rng.randint(3, 21),
        "hours": rng.randint(2, 6),
        "months": rng.randint(2, 11),
        "years": rng.randint(2, 9),
        "n": rng.choice([5, 8, 12, 20, 25]),
        "name": name,
        "email": f"{name.lower()}.{rng.choice('kmrst')}{rng.randint(1, 99)}@"
        f"{rng.choice(['gmail.com', 'outlook.com', 'yahoo.com', 'proton.me'])}",
    }


def product_for(tpl: str, label: str, sl: dict, rng: random.Random) -> str:
    """The product the ticket is filed under: the one the text names, else a queue default."""
    if "{device}" in tpl:
        return sl["_device"]
    if "{plan}" in tpl:
        return sl["plan"]
    if label == "account_access":
        return rng.choice(ACCOUNT_PRODUCTS)
    if label in ("billing", "cancellation") and "{order}" not in tpl:
        return sl["plan"]
    return sl["_device"]


def add_typo(text: str, rng: random.Random) -> str:
    words = text.split(" ")
    known = [i for i, w in enumerate(words) if w.lower() in MISSPELLINGS]
    if known and rng.random() < 0.6:
        i = rng.choice(known)
        words[i] = MISSPELLINGS[words[i].lower()]
        return " ".join(words)
    cands = [i for i, w in enumerate(words) if w.isalpha() and w.islower() and len(w) >= 5]
    if not cands:
        return text
    i = rng.choice(cands)
    w, j = words[i], rng.randrange(1, len(words[i]) - 2)
    op = rng.choice(["swap", "drop", "double"])
    if op == "swap":
        w = w[:j] + w[j + 1] + w[j] + w[j + 2 :]
    elif op == "drop":
        w = w[:j] + w[j + 1 :]
    else:
        w = w[:j] + w[j] + w[j:]
    words[i] = w
    return " ".join(words)


def decorate(text: str, rng: random.Random, lang: str, channel: str, name: str, label: str) -> str:
    """Channel/tone surface variation: anger, typos, greetings, sign-offs, fillers."""
    body = [text]
    upset = lang == "en" and label != "product_inquiry"  # pre-sales questions stay calm
    if upset and rng.random() < 0.08:
        body.insert(0, rng.choice(ANGRY_OPENERS))
    if upset and rng.random() < 0.06:
        body.append(rng.choice(URGENT_CLOSERS))
    out = " ".join(body)
    if lang == "en" and rng.random() < 0.12:
        out = add_typo(out, rng)
    sep = "\n" if channel == "email" else " "  # emails: greeting / sign-off on their own lines
    if rng.random() < GREETING_RATE.get(channel, 0):
        out = rng.choice((GREETINGS if channel == "email" else SHORT_GREETINGS)[lang]) + sep + out
    if rng.random() < SIGNOFF_RATE.get(channel, 0):
        out = out + sep + rng.choice(SIGNOFFS[lang]).format(name=name)
    if channel == "chat" and lang == "en" and rng.random() < 0.2:
        out = out.lower().rstrip(".")
    if channel == "phone_transcript":
        filler = rng.choice(PHONE_FILLERS) if lang == "en" else ""
        out = "Caller: " + filler + (out[0].lower() + out[1:] if filler else out)
    if channel == "social_media":
        if rng.random() < 0.8:
            out = f"{SOCIAL_HANDLE} {out}"
        if rng.random() < 0.3:
            out = f"{out} {rng.choice(HASHTAGS)}"
    return out


def maybe_flip(label: str, rng: random.Random) -> str:
    return CONFUSABLE[label] if rng.random() < LABEL_NOISE_RATE else label


# --------------------------------------------------------------------------- ticket builders
def reference_ticket(rng, label, lang, region, channel, ts):
    sl = make_slots(rng, region, lang, ts)
    if lang == "en":
        if rng.random() < AMBIGUOUS_RATE:
            tpl = rng.choice([t for t, lab in AMBIGUOUS if lab == label])
        else:
            tpl = rng.choice(EN_TEMPLATES[label])
    else:
        tpl = rng.choice(FOREIGN_TEMPLATES[lang][label])
    product = product_for(tpl, label, sl, rng)
    text = decorate(tpl.format_map(sl), rng, lang, channel, sl["name"], label)
    return text, product, maybe_flip(label, rng)


def drift_ticket(rng, label, lang, region, channel, ts):
    sl = make_slots(rng, region, lang, ts)
    new = rng.random() < NEW_PRODUCT_RATE
    if lang == "en":
        if new:
            tpl, product = rng.choice(DRIFT_OPENERS[label])
        else:
            tpl = rng.choice(EN_TEMPLATES[label])
            product = product_for(tpl, label, sl, rng)
        parts = [tpl] + rng.sample(DRIFT_DETAILS[label], rng.choice([1, 2]))
        if rng.random() < 0.6:  # (don't repeat the order number if the opener has it)
            parts.append(rng.choice([c for c in DRIFT_CONTEXT if "{order}" not in c or "{order}" not in tpl]))
    else:
        if new and label == "billing":
            tpl, product = rng.choice(FOREIGN_TEMPLATES[lang]["drift_billing"]), "FlexPay"
        else:
            tpl = rng.choice(FOREIGN_TEMPLATES[lang][label])
            if new and "{device}" in tpl:
                sl["device"] = sl["_device"] = "Zephyr Fold"
            product = product_for(tpl, label, sl, rng)
        parts = [tpl] + rng.sample(FOREIGN_TEMPLATES[lang]["drift_extra"], rng.choice([1, 2]))
    body = " ".join(p.format_map(sl) for p in parts)
    text = decorate(body, rng, lang, channel, sl["name"], label)
    return text, product, maybe_flip(label, rng)


def generate_split(rng, n, prefix, start, ndays, label_w, channel_w, builder):
    rows = []
    for label in exact_labels(rng, label_w, n):
        ts = rand_ts(rng, start, ndays)
        channel = wchoice(rng, channel_w)
        region = wchoice(rng, REGIONS)
        lang = wchoice(rng, LANG_BY_REGION[region])
        text, product, label = builder(rng, label, lang, region, channel, ts)
        rows.append(
            {
                "text": text,
                "label": label,
                "channel": channel,
                "region": region,
                "language": lang,
                "product": product,
                "timestamp": fmt_ts(ts),
            }
        )
    rows.sort(key=lambda r: r["timestamp"])  # stable sort -> deterministic
    return [{"id": f"{prefix}-{i:06d}", **row} for i, row in enumerate(rows, 1)]


def golden_rows(rng):
    catalogue = DEVICES + PLANS + ACCOUNT_PRODUCTS
    rows = []
    for i, (text, label, channel, region, lang) in enumerate(GOLDEN, 1):
        assert label in LABELS and channel in REF_CHANNELS and region in REGIONS, text
        low = text.lower()
        hits = sorted((low.find(p.lower()), p) for p in catalogue if p.lower() in low)
        ts = rand_ts(rng, datetime(2026, 1, 1), 181)
        rows.append(
            {
                "id": f"gold-{i:04d}",
                "text": text,
                "label": label,
                "channel": channel,
                "region": region,
                "language": lang,
                "product": hits[0][1] if hits else "unspecified",
                "timestamp": fmt_ts(ts),
            }
        )
    return rows


def write_jsonl(path: str, rows: list) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--out",
        default=os.path.dirname(os.path.abspath(__file__)),
        help="output directory (default: this script's directory)",
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="base random seed")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)

    splits = {
        "tickets_reference.jsonl": generate_split(
            random.Random(args.seed),
            3000,
            "ref",
            datetime(2026, 1, 1),
            181,
            REF_LABEL_WEIGHTS,
            REF_CHANNELS,
            reference_ticket,
        ),
        "tickets_batch_same.jsonl": generate_split(
            random.Random(args.seed + 1),
            1000,
            "same",
            datetime(2026, 7, 1),
            31,
            REF_LABEL_WEIGHTS,
            REF_CHANNELS,
            reference_ticket,
        ),
        "tickets_batch_drift.jsonl": generate_split(
            random.Random(args.seed + 2),
            1000,
            "drift",
            datetime(2026, 8, 1),
            31,
            DRIFT_LABEL_WEIGHTS,
            DRIFT_CHANNELS,
            drift_ticket,
        ),
        "golden.jsonl": golden_rows(random.Random(args.seed + 3)),
    }
    for name, rows in splits.items():
        write_jsonl(os.path.join(args.out, name), rows)
        print(f"wrote {len(rows):5d} rows -> {os.path.join(args.out, name)}")


if __name__ == "__main__":
    main()
