// ToneVault agent widget: start a payment on the call, follow it live,
// act on it. It only ever sees what the API returns: masked values.
// The widget token comes in the URL and is removed from it at once, so it
// is not left in the history or shown on screen. It is kept in the tab's
// sessionStorage (gone with the tab, and useless once the token expires),
// so that a reload of the page finds it, and the payment it was showing.
"use strict";
(function () {
  const q = new URLSearchParams(location.search);
  const callID = q.get("call") || "";
  const kept = "tonevault.widget-token." + callID;
  let token = q.get("token") || "";
  try {
    if (token) sessionStorage.setItem(kept, token);
    else token = sessionStorage.getItem(kept) || "";
  } catch (e) { /* storage refused: a reload needs a new link */ }
  if (q.has("token")) {
    q.delete("token");
    const rest = q.toString();
    history.replaceState(null, "", location.pathname + (rest ? "?" + rest : ""));
  }
  const api = "../v1";
  const $ = (id) => document.getElementById(id);
  const el = {
    start: $("start"), amount: $("amount"), currency: $("currency"), reference: $("reference"), take: $("take"),
    session: $("session"), summary: $("summary"), fields: $("fields"),
    submit: $("submit"), restart: $("restart"), cancel: $("cancel"),
    result: $("result"), resultTitle: $("result-title"), resultDetail: $("result-detail"), again: $("again"),
    status: $("status"), error: $("error"),
  };
  const finalStates = ["approved", "declined", "failed", "cancelled", "expired"];
  // Why a field was refused: short phrases after the field's label.
  const reasons = {
    luhn: "not a valid card number", length: "wrong number of digits", brand_not_accepted: "card type not accepted",
    unknown_brand: "unknown card type", month: "month must be 01 to 12", expired: "the card has expired",
    timeout: "timed out",
  };
  // Why a payment ended: sentences the agent can read out to the customer.
  // Lost, stolen and suspected fraud are worded as a plain decline, as card
  // schemes ask: the agent must not accuse the caller.
  const outcomes = {
    attempts_exhausted: "Too many attempts at one of the card details.",
    not_configured: "Card payments are not set up on this system.",
    cancelled: "The payment was cancelled.",
    call_ended: "The call ended before the payment was finished.",
    session_timeout: "The payment took too long and timed out.",
    shutdown: "The payment system was restarting. Please try again.",
    tokenization_failed: "The card could not be stored securely. Please try again.",
    authorization_failed: "The bank could not be asked for this payment. Please try again.",
    invalid_result: "The bank's answer could not be used. The payment did not go through.",
    declined: "The bank declined the payment.",
    failed: "The payment did not go through.",
    refer_to_issuer: "The bank declined the payment and asks the cardholder to contact them.",
    invalid_merchant: "The bank does not accept payments for this merchant.",
    pick_up_card: "The bank declined this card.",
    do_not_honour: "The bank declined the payment.",
    invalid_transaction: "The bank does not allow this kind of payment on this card.",
    invalid_amount: "The bank did not accept the amount.",
    invalid_card: "The bank does not recognise this card number.",
    format_error: "The bank could not read the payment. Please try again.",
    lost_card: "The bank declined this card.",
    stolen_card: "The bank declined this card.",
    insufficient_funds: "There are not enough funds on the card.",
    expired_card: "The bank says the card has expired.",
    incorrect_pin: "The bank declined the payment.",
    not_permitted_to_cardholder: "This card cannot be used for this kind of payment.",
    not_permitted_to_terminal: "The bank does not allow this kind of payment from us.",
    suspected_fraud: "The bank declined the payment.",
    exceeds_withdrawal_limit: "The payment is over the card's spending limit.",
    restricted_card: "This card cannot be used for this payment.",
    exceeds_frequency_limit: "The card has been used too often; the bank declined the payment.",
    issuer_unavailable: "The cardholder's bank could not be reached. Please try again in a moment.",
    system_malfunction: "The bank had a technical problem. Please try again in a moment.",
    cvv_mismatch: "The security code does not match the card.",
    psp_timeout: "The bank did not answer in time. The payment did not go through.",
    psp_connection_lost: "The connection to the bank was lost. The payment did not go through.",
    psp_unavailable: "The bank cannot be reached right now. Please try again in a moment.",
    psp_bad_response: "The bank's answer could not be read. The payment did not go through.",
    psp_error: "The payment did not go through.",
    invalid_request: "The payment request was not valid.",
  };

  const brands = {
    visa: "Visa", mastercard: "Mastercard", amex: "American Express", discover: "Discover", jcb: "JCB",
    diners: "Diners Club", unionpay: "UnionPay", maestro: "Maestro",
  };

  // outcomeWords turns a reason code into a sentence, with a fallback for
  // codes this page does not know (a new acquirer code: "declined_Q9").
  function outcomeWords(code, state) {
    if (Object.prototype.hasOwnProperty.call(outcomes, code)) return outcomes[code];
    const m = /^declined_([0-9A-Za-z_]{1,2})$/.exec(code);
    if (m) return "The bank declined the payment (code " + m[1] + ").";
    if (state === "declined") return "The bank declined the payment.";
    return "The payment did not go through.";
  }

  let payment = null; // the latest View
  let source = null;
  let lastAnnounced = "";

  function say(msg) { if (msg !== lastAnnounced) { el.status.textContent = msg; lastAnnounced = msg; } }
  function fail(msg) { el.error.textContent = msg || ""; }

  if (!callID || !token) {
    fail("Open this widget from the CRM: the link has no call or token.");
    el.take.disabled = true;
    return;
  }

  function newKey() {
    if (crypto.randomUUID) return crypto.randomUUID();
    const b = new Uint8Array(16);
    crypto.getRandomValues(b);
    return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  }

  async function call(method, path, body, headers) {
    const h = Object.assign({ Authorization: "Bearer " + token }, headers || {});
    const init = { method: method, headers: h, cache: "no-store" };
    if (body !== undefined) { h["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
    const resp = await fetch(api + path, init);
    const text = await resp.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
    if (!resp.ok) {
      const detail = data && (data.detail || data.title);
      if (resp.status === 401) throw new Error("The widget link has expired: reopen it from the CRM.");
      throw new Error(detail || "Request failed (" + resp.status + ")");
    }
    return data;
  }

  // minor converts "12.34" to minor units with the currency's exponent.
  function minor(amount, currency) {
    let exp = 2;
    try { exp = new Intl.NumberFormat("en", { style: "currency", currency: currency }).resolvedOptions().maximumFractionDigits; } catch (e) { return null; }
    const m = /^\s*(\d{1,12})(?:[.,](\d+))?\s*$/.exec(amount);
    if (!m || (m[2] || "").length > exp) return null;
    const frac = (m[2] || "").padEnd(exp, "0");
    const n = Number(m[1] + frac);
    return Number.isSafeInteger(n) && n > 0 ? n : null;
  }

  function format(v) {
    try {
      const exp = new Intl.NumberFormat("en", { style: "currency", currency: v.currency }).resolvedOptions().maximumFractionDigits;
      return new Intl.NumberFormat(undefined, { style: "currency", currency: v.currency }).format(v.amount / Math.pow(10, exp));
    } catch (e) { return v.amount + " " + v.currency; }
  }

  el.start.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    fail("");
    const currency = el.currency.value.trim().toUpperCase();
    const amount = minor(el.amount.value, currency);
    if (!/^[A-Z]{3}$/.test(currency)) { fail("Enter a three-letter currency code, e.g. GBP."); el.currency.focus(); return; }
    if (amount === null) { fail("Enter an amount, e.g. 12.50."); el.amount.focus(); return; }
    el.take.disabled = true;
    try {
      const body = { amount: amount, currency: currency };
      if (el.reference.value.trim()) body.merchant_reference = el.reference.value.trim();
      const v = await call("POST", "/calls/" + encodeURIComponent(callID) + "/payments", body, { "Idempotency-Key": newKey() });
      show(v);
      follow(v.id);
    } catch (e) {
      fail(e.message);
    } finally {
      el.take.disabled = false;
    }
  });

  function follow(id) {
    if (source) source.close();
    source = new EventSource(api + "/payments/" + encodeURIComponent(id) + "/events?access_token=" + encodeURIComponent(token));
    source.addEventListener("payment", (ev) => {
      let v;
      try { v = JSON.parse(ev.data); } catch (e) { return; }
      show(v);
    });
    source.onerror = () => {
      if (source && source.readyState === EventSource.CLOSED && payment && !finalStates.includes(payment.state)) {
        fail("Live updates stopped: the widget link may have expired.");
      }
    };
  }

  async function act(path, body) {
    if (!payment) return;
    fail("");
    try {
      show(await call("POST", "/payments/" + encodeURIComponent(payment.id) + path, body));
    } catch (e) {
      fail(e.message);
    }
  }

  el.submit.addEventListener("click", async () => {
    el.submit.disabled = true;
    say("Submitting the payment…");
    await act("/submit");
  });
  el.restart.addEventListener("click", () => act("/restart"));
  el.cancel.addEventListener("click", () => act("/cancel"));
  el.again.addEventListener("click", () => {
    payment = null;
    el.result.hidden = true;
    el.session.hidden = true;
    el.start.hidden = false;
    el.amount.focus();
  });

  // show renders a View; older versions than the one shown are ignored
  // (a POST answer and an SSE event can cross).
  function show(v) {
    if (payment && payment.id === v.id && v.version < payment.version) return;
    payment = v;
    el.start.hidden = true;
    el.session.hidden = false;
    el.summary.textContent = format(v) + (v.merchant_reference ? " · " + v.merchant_reference : "");
    renderFields(v);
    const final = finalStates.includes(v.state);
    el.submit.disabled = v.state !== "complete" && v.state !== "tokenized";
    el.restart.disabled = final || v.state === "submitting";
    el.cancel.disabled = final || v.state === "submitting";
    if (final) {
      if (source) { source.close(); source = null; }
      showResult(v);
    } else {
      el.result.hidden = true;
      announce(v);
    }
  }

  function renderFields(v) {
    const ids = v.fields.map((f) => f.name).join(",");
    if (el.fields.dataset.names !== ids) {
      el.fields.textContent = "";
      for (const f of v.fields) el.fields.appendChild(fieldRow(f));
      el.fields.dataset.names = ids;
    }
    for (const f of v.fields) {
      const li = el.fields.querySelector('[data-field="' + CSS.escape(f.name) + '"]');
      li.className = "field " + f.status + (v.current_field === f.name ? " current" : "");
      li.querySelector(".masked").textContent = f.masked || "";
      li.querySelector(".masked").setAttribute("aria-label", f.name === "card_number" && f.valid ? "card number " + f.masked : f.entered + " digits entered");
      const brand = li.querySelector(".brand");
      brand.textContent = f.brand && f.brand !== "unknown" ? f.brand : "";
      brand.hidden = !brand.textContent;
      const tick = li.querySelector(".tick");
      tick.textContent = f.valid ? "✓" : "";
      tick.setAttribute("aria-label", f.valid ? "valid" : "");
      const meta = [];
      if (f.error) meta.push(reasons[f.error] || "not accepted");
      if (f.attempts > 0) meta.push("attempt " + Math.min(f.attempts + 1, f.max_attempts) + " of " + f.max_attempts);
      if (f.status === "failed") meta.push("no attempts left");
      li.querySelector(".meta").textContent = meta.join(" · ");
      li.querySelector("button").disabled = finalStates.includes(v.state) || v.state === "submitting" || (f.entered === 0 && !f.valid && f.status !== "invalid");
    }
  }

  function fieldRow(f) {
    const li = document.createElement("li");
    li.dataset.field = f.name;
    const name = document.createElement("div");
    name.className = "name";
    name.textContent = f.label || f.name;
    const masked = document.createElement("div");
    masked.className = "masked";
    const meta = document.createElement("div");
    meta.className = "meta";
    const side = document.createElement("div");
    side.className = "side";
    const brand = document.createElement("span");
    brand.className = "brand";
    const tick = document.createElement("span");
    tick.className = "tick";
    const reset = document.createElement("button");
    reset.type = "button";
    reset.textContent = "Reset";
    reset.setAttribute("aria-label", "Reset " + (f.label || f.name));
    reset.addEventListener("click", () => act("/reset", { field: f.name }));
    side.append(tick, brand, reset);
    li.append(name, masked, meta, side);
    return li;
  }

  function announce(v) {
    if (v.state === "complete" || v.state === "tokenized") { say("All details entered. Ready to submit."); return; }
    if (v.state === "submitting") { say("Submitting the payment…"); return; }
    const f = v.fields.find((x) => x.name === v.current_field);
    if (!f) { say("Waiting for the customer…"); return; }
    const label = f.label || f.name;
    if (f.status === "invalid") { say(label + ": " + (reasons[f.error] || "invalid") + ". Ask the customer to type it again."); return; }
    say(label + ": " + f.entered + (f.entered === 1 ? " digit" : " digits") + " entered.");
  }

  // resume finds the payment running on the call when the widget opens
  // (a reload in the middle of a payment) and follows it again.
  async function resume() {
    try {
      const list = await call("GET", "/payments?call_id=" + encodeURIComponent(callID) + "&limit=1");
      const v = list && list.payments && list.payments[0];
      if (v && !payment && !finalStates.includes(v.state)) {
        show(v);
        follow(v.id);
      }
    } catch (e) {
      fail(e.message);
    }
  }
  resume();

  function showResult(v) {
    const titles = { approved: "Payment approved", declined: "Payment declined", failed: "Payment failed", cancelled: "Payment cancelled", expired: "Payment expired" };
    el.resultTitle.textContent = titles[v.state] || v.state;
    el.resultTitle.className = "outcome-" + v.state;
    const parts = [];
    const r = v.result || {};
    if (r.auth_code) parts.push("Authorisation code " + r.auth_code + ".");
    const why = r.reason || v.reason;
    if (v.state !== "approved" && (why || v.state === "declined" || v.state === "failed")) parts.push(outcomeWords(why || "", v.state));
    const card = v.fields.find((f) => f.name === "card_number" && f.valid && f.masked);
    if (card) parts.push("Card " + (brands[card.brand] ? brands[card.brand] + " " : "") + card.masked + ".");
    el.resultDetail.textContent = parts.join(" ");
    el.result.hidden = false;
    say(el.resultTitle.textContent + ". " + parts.join(" "));
    el.result.focus();
  }
})();
