// One messages.create and one messages.stream through the gateway with the official TypeScript
// SDK. Prints one JSON line for the Python test to check. Env: GATEWAY_URL, CONSOLE_KEY, MODEL.
import Anthropic from "@anthropic-ai/sdk";

const client = new Anthropic({
  apiKey: process.env.CONSOLE_KEY,
  baseURL: process.env.GATEWAY_URL,
  maxRetries: 0,
  timeout: 20000,
});
const model = process.env.MODEL;

const created = await client.messages.create({
  model,
  max_tokens: 64,
  messages: [{ role: "user", content: "Hello from TypeScript" }],
});

let streamedText = "";
const stream = client.messages.stream({
  model,
  max_tokens: 64,
  messages: [{ role: "user", content: "Stream to TypeScript" }],
});
stream.on("text", (text) => {
  streamedText += text;
});
const final = await stream.finalMessage();

let authError = null;
try {
  await new Anthropic({ apiKey: "csk_not_a_real_key", baseURL: process.env.GATEWAY_URL, maxRetries: 0 })
    .models.list();
} catch (error) {
  authError = { status: error.status, name: error.constructor.name };
}

console.log(JSON.stringify({ created, final, streamedText, authError }));
