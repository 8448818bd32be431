// ToneVault agent page: a softphone in the browser and the payment widget
// of the same call beside it. Signed in with an agent token the CRM minted
// (POST /v1/agent-tokens), passed in the URL and removed from it at once;
// kept in the tab's sessionStorage so that a reload signs in again.
//
// Calls ring here over the event stream (/v1/agent/events); answering
// posts the browser's SDP offer and takes the gateway's answer (one
// PeerConnection per call, G.711, DTLS-SRTP). What the agent hears is the
// gateway's masked stream: no key the customer presses reaches this page.
//
// ?processing=off turns the browser's voice processing (echo
// cancellation, noise suppression, gain control) off, for headsets that
// do their own.
"use strict";
(function () {
  const q = new URLSearchParams(location.search);
  const kept = "tonevault.agent-token";
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
  const processing = q.get("processing") !== "off";
  const api = "../v1";
  const $ = (id) => document.getElementById(id);
  const el = {
    presence: $("presence"), who: $("who"), available: $("available"),
    incoming: $("incoming"), inCaller: $("in-caller"), inCorrelation: $("in-correlation"), answer: $("answer"),
    active: $("active"), callCaller: $("call-caller"), callState: $("call-state"), callTime: $("call-time"),
    callCorrelation: $("call-correlation"), mute: $("mute"), hold: $("hold"), hangup: $("hangup"),
    remote: $("remote"), status: $("status"), error: $("error"), payment: $("payment"), widget: $("widget"),
  };
  // Why a call ended or did not connect, in words for the agent.
  const reasons = {
    answered_elsewhere: "Another agent answered.",
    caller_cancelled: "The caller hung up.",
    no_answer: "Nobody answered in time.",
    bad_sdp: "This browser's call setup was refused.",
    ice_failed: "No network path to the call (ICE failed). Check the network or firewall.",
    dtls_failed: "The secure media connection failed (DTLS).",
    agent_hangup: "You hung up.",
    agent_gone: "The call's media was lost.",
    completed: "The caller hung up.",
    media_timeout: "The call's media stopped.",
    max_duration: "The call reached its maximum length.",
    shutdown: "The phone system is restarting.",
    token_expired: "Your sign-in has expired. Open the page again from the CRM.",
    token_revoked: "You were signed out. Open the page again from the CRM.",
  };
  const why = (r) => reasons[r] || (r ? "(" + r + ")" : "");

  let iceServers = [];
  const ringing = new Map(); // call id → incoming event
  let call = null; // {id, caller, correlation, pc, mic, started, timer}

  function say(msg) { el.status.textContent = msg; }
  function fail(msg) { el.error.textContent = msg; }

  function correlation(dl, c) {
    dl.textContent = "";
    for (const [k, v] of Object.entries(c || {})) {
      const dt = document.createElement("dt"); dt.textContent = k;
      const dd = document.createElement("dd"); dd.textContent = v;
      dl.append(dt, dd);
    }
  }

  function showIncoming() {
    const next = ringing.values().next().value;
    if (!next || call) { el.incoming.hidden = true; return; }
    el.inCaller.textContent = next.caller || "Unknown caller";
    correlation(el.inCorrelation, next.correlation);
    el.answer.dataset.call = next.call_id;
    el.answer.disabled = false;
    el.incoming.hidden = false;
  }

  async function request(method, path, body, type) {
    const headers = { "Authorization": "Bearer " + token };
    if (body !== undefined) headers["Content-Type"] = type || "application/json";
    const res = await fetch(api + path, { method, headers, body, cache: "no-store" });
    if (!res.ok) {
      let detail = res.statusText;
      try { const p = await res.json(); detail = p.detail || p.title || detail; } catch (e) { /* not JSON */ }
      const err = new Error(detail);
      err.status = res.status;
      throw err;
    }
    return res;
  }

  // The whole offer, every candidate in it: the exchange has no trickle.
  function gathered(pc) {
    if (pc.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => { if (pc.iceGatheringState === "complete") { pc.removeEventListener("icegatheringstatechange", done); resolve(); } };
      pc.addEventListener("icegatheringstatechange", done);
      setTimeout(resolve, 5000);
    });
  }

  async function answer() {
    const id = el.answer.dataset.call;
    const ring = ringing.get(id);
    if (!id || !ring || call) return;
    el.answer.disabled = true;
    fail("");
    say("Answering…");
    let mic, pc;
    try {
      mic = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: processing, noiseSuppression: processing, autoGainControl: processing }, video: false });
      pc = new RTCPeerConnection({ iceServers });
      call = { id, caller: ring.caller, correlation: ring.correlation, pc, mic, muted: false, held: false };
      for (const t of mic.getAudioTracks()) pc.addTransceiver(t, { direction: "sendrecv", streams: [mic] });
      pc.ontrack = (e) => { el.remote.srcObject = e.streams[0] || new MediaStream([e.track]); };
      pc.onconnectionstatechange = () => {
        if (call && call.pc === pc && pc.connectionState === "failed") say("Media connection failed.");
      };
      await pc.setLocalDescription(await pc.createOffer());
      await gathered(pc);
      const res = await request("POST", "/agent/calls/" + encodeURIComponent(id) + "/answer", pc.localDescription.sdp, "application/sdp");
      await pc.setRemoteDescription({ type: "answer", sdp: await res.text() });
      // Still ringing until the media connects: a failure offers it again.
      el.incoming.hidden = true;
      showCall("connecting");
    } catch (e) {
      fail("Could not answer: " + e.message);
      teardown();
      showIncoming();
    }
  }

  function showCall(state) {
    // The event stream may say "connected" before the answer's promise
    // has resolved here: connecting never comes after it.
    if (!call || (state === "connecting" && call.started)) return;
    el.callCaller.textContent = call.caller || "unknown caller";
    correlation(el.callCorrelation, call.correlation);
    el.callState.textContent = state === "connected" ? "Connected" : "Connecting…";
    el.callState.className = "state " + state;
    el.active.hidden = false;
    if (state === "connected" && !call.started) {
      call.started = Date.now();
      call.timer = setInterval(() => {
        const s = Math.floor((Date.now() - call.started) / 1000);
        el.callTime.textContent = Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
      }, 1000);
      say("On a call.");
      openWidget(call.id);
    }
  }

  // The payment widget of this call, beside the phone.
  async function openWidget(id) {
    try {
      const res = await request("POST", "/agent/calls/" + encodeURIComponent(id) + "/widget-token", "{}");
      const t = await res.json();
      el.widget.src = "../widget/?call=" + encodeURIComponent(id) + "&token=" + encodeURIComponent(t.token);
      el.payment.hidden = false;
    } catch (e) {
      fail("The payment widget could not open: " + e.message);
    }
  }

  function teardown() {
    if (!call) return;
    clearInterval(call.timer);
    if (call.pc) call.pc.close();
    if (call.mic) for (const t of call.mic.getTracks()) t.stop();
    el.remote.srcObject = null;
    call = null;
    el.active.hidden = true;
    el.callTime.textContent = "";
    el.mute.setAttribute("aria-pressed", "false"); el.mute.textContent = "Mute";
    el.hold.setAttribute("aria-pressed", "false"); el.hold.textContent = "Hold";
  }

  function ended(ev) {
    if (!call || call.id !== ev.call_id) return;
    const failed = ev.state === "failed";
    teardown();
    (failed ? fail : say)((failed ? "The call did not connect: " : "Call ended. ") + why(ev.reason));
    showIncoming();
  }

  async function hangup() {
    if (!call) return;
    const id = call.id;
    el.hangup.disabled = true;
    try { await request("DELETE", "/agent/calls/" + encodeURIComponent(id)); } catch (e) { /* gone already */ }
    el.hangup.disabled = false;
    if (call && call.id === id) { teardown(); say("Call ended. " + why("agent_hangup")); showIncoming(); }
  }

  // Mute: the microphone sends silence. Hold: nothing either way.
  function setMic() {
    if (!call) return;
    for (const t of call.mic.getAudioTracks()) t.enabled = !call.muted && !call.held;
    el.remote.muted = call.held;
  }
  el.mute.addEventListener("click", () => {
    if (!call) return;
    call.muted = !call.muted;
    el.mute.setAttribute("aria-pressed", String(call.muted));
    el.mute.textContent = call.muted ? "Unmute" : "Mute";
    setMic();
  });
  el.hold.addEventListener("click", () => {
    if (!call) return;
    call.held = !call.held;
    el.hold.setAttribute("aria-pressed", String(call.held));
    el.hold.textContent = call.held ? "Resume" : "Hold";
    say(call.held ? "On hold: the caller hears nothing, you hear nothing." : "On a call.");
    setMic();
  });
  el.answer.addEventListener("click", answer);
  el.hangup.addEventListener("click", hangup);
  el.available.addEventListener("change", async () => {
    try { await request("PUT", "/agent/availability", JSON.stringify({ available: el.available.checked })); } catch (e) { fail(e.message); }
  });

  if (!token) {
    el.presence.textContent = "Signed out";
    fail("No agent token: open this page from the CRM.");
    return;
  }
  const es = new EventSource(api + "/agent/events?access_token=" + encodeURIComponent(token));
  es.onerror = () => { el.presence.textContent = "Reconnecting…"; el.presence.className = "presence offline"; };
  es.addEventListener("ready", (m) => {
    const ev = JSON.parse(m.data);
    if (ev.ice_servers) iceServers = ev.ice_servers;
    if (ev.agent) el.who.textContent = ev.agent + (ev.pools ? " · " + ev.pools.join(", ") : "");
    const on = ev.available !== false;
    el.available.checked = on;
    el.available.disabled = false;
    el.presence.textContent = on ? "Available" : "Away";
    el.presence.className = "presence " + (on ? "online" : "away");
    fail("");
  });
  es.addEventListener("incoming", (m) => {
    const ev = JSON.parse(m.data);
    ringing.set(ev.call_id, ev);
    showIncoming();
  });
  es.addEventListener("ring_ended", (m) => {
    const ev = JSON.parse(m.data);
    if (ringing.delete(ev.call_id) && !call) say("Missed call. " + why(ev.reason));
    showIncoming();
  });
  es.addEventListener("call", (m) => {
    const ev = JSON.parse(m.data);
    if (ev.state === "connected" && call && call.id === ev.call_id) { ringing.delete(ev.call_id); showCall("connected"); }
    else if (ev.state === "ended" || ev.state === "failed") ended(ev);
  });
  es.addEventListener("signed_out", (m) => {
    const ev = JSON.parse(m.data);
    es.close();
    el.presence.textContent = "Signed out"; el.presence.className = "presence offline";
    el.available.disabled = true;
    fail(why(ev.reason));
  });
})();
