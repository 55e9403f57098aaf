// The events the browser tests put through the real ingest path (POST
// /api/v1/events → Kafka → ClickHouse). All of them fall in the 10 minutes
// before t0, so the wall's 15-minute tiles are made of them alone, and a
// few numbers are known: every first reply comes after 4 s (first response
// p90 4 s: green), every transfer that reached an agent waited 90 s
// (human wait p90 90 s: red); p90 is within 1% of these (a histogram).
export const HOSTILE = '</script><img src=x onerror=alert(1)>';
export const TEST_QUEUE = 'e2e-billing';

let seq = 0;
function ev(type, at, conv, extra) {
  seq += 1;
  return { event_id: `e2e-${conv}-${seq}`, schema_version: 1, type, occurred_at: new Date(at).toISOString(), conversation_id: conv, ...extra };
}

// conversations returns the seeded events and what they are made of.
export function conversations(t0) {
  const out = [];
  const regions = ['广州', '上海', '成都'];
  const convs = [];
  for (let i = 0; i < 30; i++) {
    const id = `e2e-c-${String(i).padStart(2, '0')}`;
    const region = regions[i % regions.length];
    const start = t0 - 9 * 60e3 + i * 8e3;
    convs.push({ id, region });
    const attrs = { channel: 'chat', region, queue: TEST_QUEUE, business_line: 'billing' };
    out.push(ev('conversation.started', start, id, { ...attrs, entry: 'bot', customer_id: 'u-' + i }));
    out.push(ev('message.sent', start + 1e3, id, { actor: { role: 'customer', id: 'u-' + i }, text: '账单有问题', sentiment: -0.5 }));
    out.push(ev('message.sent', start + 4e3, id, { actor: { role: 'bot', id: 'bot-1' }, text: '请稍等' }));
    if (i < 20) {
      out.push(ev('transfer.requested', start + 30e3, id, { reason: 'bot_unable', queue: TEST_QUEUE }));
      if (i < 18) {
        out.push(ev('agent.assigned', start + 120e3, id, { actor: { role: 'agent', id: 'a-' + (i % 4) } }));
        out.push(ev('message.sent', start + 125e3, id, { actor: { role: 'agent', id: 'a-' + (i % 4) }, text: '您好' }));
      } else {
        out.push(ev('conversation.abandoned', start + 100e3, id, {}));
        continue;
      }
    }
    if (i < 26) {
      out.push(ev('conversation.closed', start + 200e3, id, { resolution: i % 5 === 0 ? 'unresolved' : 'resolved' }));
      out.push(ev('csat.submitted', start + 210e3, id, { score: [5, 4, 2][i % 3] }));
    }
  }
  // A conversation from a region whose name is markup, with markup in its
  // text, and complaints from that region: an alert rule picks them up.
  const h = 'e2e-hostile';
  const hs = t0 - 6 * 60e3;
  out.push(ev('conversation.started', hs, h, { channel: 'web', region: HOSTILE, queue: TEST_QUEUE, business_line: 'billing', entry: 'agent', customer_id: HOSTILE }));
  out.push(ev('message.sent', hs + 2e3, h, { actor: { role: 'customer', id: 'u-h' }, text: HOSTILE }));
  for (let i = 0; i < 5; i++) {
    out.push(ev('complaint.filed', hs + (i + 1) * 10e3, `${h}-${i}`, { region: HOSTILE, category: HOSTILE, severity: 'high' }));
  }
  return { events: out, convs, hostile: h };
}

// post sends events to the API in batches and checks every one is accepted.
export async function post(base, events, headers = {}) {
  for (let i = 0; i < events.length; i += 200) {
    const batch = events.slice(i, i + 200);
    const r = await fetch(base + '/api/v1/events', { method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body: JSON.stringify(batch) });
    const body = await r.json().catch(() => ({}));
    if (r.status !== 202 || body.accepted !== batch.length) {
      throw new Error(`POST /api/v1/events: ${r.status} ${JSON.stringify(body).slice(0, 500)}`);
    }
  }
}

// complaint is one new complaint at t, for the live-update test.
export function complaint(t, region) {
  return ev('complaint.filed', t, `e2e-live-${seq}`, { region, severity: 'low' });
}
