// The Node `ws` peer: the broadcast loop from the ws README, speaking the bench's baseline protocol.
// GET /ws?channels=a,b (answered with an ack), events as {"action":"event","channel","id","data"},
// a publisher WebSocket at /publish whose messages are `<channel>\n<envelope JSON>`.
// Each event's message string is built once; `ws` frames and writes it per client (`client.send`).
// No auth, no history, no resume; no bound: ws buffers without limit for a slow client (bufferedAmount).
"use strict";
const http = require("http");
const { WebSocketServer, WebSocket } = require("ws");

const portArgument = process.argv.indexOf("--port");
const port = portArgument > 0 ? Number(process.argv[portArgument + 1]) : 0;
const byChannel = new Map();
let sequence = 0;
const server = http.createServer((request, response) => { response.writeHead(404); response.end(); });
const sockets = new WebSocketServer({ noServer: true });

function publish(data) {
  const text = data.toString();
  const split = text.indexOf("\n");
  const channel = text.slice(0, split);
  sequence += 1;
  const subscribers = byChannel.get(channel);
  if (!subscribers) return;
  const message = '{"action":"event","channel":' + JSON.stringify(channel) + ',"id":"' + sequence +
    '","data":' + text.slice(split + 1) + "}";
  for (const client of subscribers) {
    if (client.readyState === WebSocket.OPEN) client.send(message);
  }
}

server.on("upgrade", (request, socket, head) => {
  const url = new URL(request.url, "http://localhost");
  sockets.handleUpgrade(request, socket, head, (client) => {
    if (url.pathname === "/publish") {
      client.on("message", publish);
      return;
    }
    const channels = (url.searchParams.get("channels") || "").split(",").filter(Boolean);
    for (const channel of channels) {
      if (!byChannel.has(channel)) byChannel.set(channel, new Set());
      byChannel.get(channel).add(client);
    }
    client.on("close", () => { for (const channel of channels) byChannel.get(channel).delete(client); });
    client.send(JSON.stringify({ action: "ack", subscribed: channels, unsubscribed: [] }));
  });
});

process.on("SIGTERM", () => process.exit(0));
process.on("SIGINT", () => process.exit(0));
server.listen(port, "127.0.0.1", () => {
  console.log(`peer node_ws serving on http://127.0.0.1:${server.address().port}`);
});
