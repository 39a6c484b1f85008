// The page at `/`: a document goes to /v1/ocr (its pages stream back as JSON lines and are shown as they come),
// the searchable PDF comes from /v1/ocr?format=pdf (the pages already read are not read again), and a question
// goes to /v1/ask (the answer, its page and the evidence, highlighted where the page's text holds it).
"use strict";

const $ = (id) => document.getElementById(id);
let current = null;  // the file being read

function headers() {
  const key = sessionStorage.getItem("vlmcli-key");
  return key ? { Authorization: `Bearer ${key}` } : {};
}

function status(text) { $("status").textContent = text; }

async function errorText(response) {
  try {
    const body = await response.json();
    return body.error ? body.error.message : response.statusText;
  } catch (e) { return `${response.status} ${response.statusText}`; }
}

async function connect() {
  const response = await fetch("/v1/models", { headers: headers() });
  if (response.status === 401) {
    $("key-box").hidden = false;
    $("model").textContent = "this server needs an API key";
    return;
  }
  const models = await response.json();
  $("model").textContent = models.data.map((model) => model.id).join(", ");
}

function form(file) {
  const data = new FormData();
  data.append("file", file, file.name);
  return data;
}

function pageCard(record) {
  const card = document.createElement("article");
  card.className = "page";
  card.id = `page-${record.page_number}`;
  card.dataset.page = record.page_number;
  const title = document.createElement("h2");
  title.textContent = `Page ${record.page_number}`;
  card.append(title);
  const image = document.createElement("img");
  image.alt = `page ${record.page_number}`;
  if (record.image) image.src = record.image;
  card.append(image);
  const text = document.createElement("div");
  text.className = "text";
  if (record.error) {
    text.innerHTML = `<p class="error"></p>`;
    text.firstChild.textContent = record.error;
  } else {
    text.innerHTML = renderMarkdown(record.text);
    text.dataset.raw = record.text;
  }
  card.append(text);
  return card;
}

async function readDocument(file) {
  current = file;
  $("pages").replaceChildren();
  $("answer").hidden = true;
  $("pdf-link").hidden = true;
  $("actions").hidden = false;
  status(`Reading ${file.name}…`);
  const response = await fetch("/v1/ocr?format=json&include_images=true", {
    method: "POST", body: form(file), headers: headers() });
  if (!response.ok) { status(`Error: ${await errorText(response)}`); return; }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffered = "", pages = 0;
  for (;;) {
    const { value, done } = await reader.read();
    buffered += decoder.decode(value || new Uint8Array(), { stream: !done });
    let newline;
    while ((newline = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
      if (!line.trim()) continue;
      const record = JSON.parse(line);
      if (record.error && record.error.message) { status(`Error: ${record.error.message}`); return; }
      $("pages").append(pageCard(record));
      pages++;
      status(`${file.name}: ${pages} page${pages === 1 ? "" : "s"} read…`);
    }
    if (done) break;
  }
  status(`${file.name}: ${pages} page${pages === 1 ? "" : "s"} read.`);
}

async function downloadPdf() {
  if (!current) return;
  $("pdf").disabled = true;
  status("Writing the searchable PDF…");
  try {
    const response = await fetch("/v1/ocr?format=pdf", { method: "POST", body: form(current), headers: headers() });
    if (!response.ok) { status(`Error: ${await errorText(response)}`); return; }
    const blob = await response.blob();
    const link = $("pdf-link");
    link.href = URL.createObjectURL(blob);
    link.download = current.name.replace(/\.[^.]*$/, "") + ".searchable.pdf";
    link.textContent = `${link.download} (${Math.ceil(blob.size / 1024)} KiB)`;
    link.hidden = false;
    link.click();
    status("The searchable PDF is ready.");
  } finally {
    $("pdf").disabled = false;
  }
}

function highlight(container, evidence) {
  // Marks the evidence where the page's rendered text holds it (a text node at a time).
  const needle = evidence.trim().toLowerCase();
  if (!needle) return false;
  const walker = document.createTreeWalker(container, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const at = node.data.toLowerCase().indexOf(needle);
    if (at < 0) continue;
    const range = document.createRange();
    range.setStart(node, at);
    range.setEnd(node, at + needle.length);
    range.surroundContents(document.createElement("mark"));
    return true;
  }
  return false;
}

function showAnswer(result) {
  const box = $("answer");
  box.replaceChildren();
  box.hidden = false;
  const text = document.createElement("p");
  text.className = "text";
  text.textContent = result.found ? result.answer : "Not found in the pages read.";
  box.append(text);
  document.querySelectorAll(".page.cited").forEach((card) => card.classList.remove("cited"));
  document.querySelectorAll("mark").forEach((mark) => mark.replaceWith(...mark.childNodes));
  const citation = (result.citations || [])[0];
  if (!citation) return;
  const where = document.createElement("p");
  where.className = "citation";
  const label = citation.page_label && citation.page_label !== String(citation.page_number)
    ? ` (“${citation.page_label}”)` : "";
  where.textContent = `Page ${citation.page_number}${label}` +
    (result.grounded ? "" : " — the answer is not in that page's text");
  box.append(where);
  if (citation.evidence) {
    const evidence = document.createElement("blockquote");
    evidence.className = "evidence";
    const mark = document.createElement("mark");
    mark.textContent = citation.evidence;
    evidence.append(mark);
    box.append(evidence);
  }
  if (citation.image) {
    const image = document.createElement("img");
    image.alt = `page ${citation.page_number}`;
    image.src = citation.image;
    box.append(image);
  }
  const card = $(`page-${citation.page_number}`);
  if (card) {
    card.classList.add("cited");
    if (citation.evidence) highlight(card.querySelector(".text"), citation.evidence);
    card.scrollIntoView({ block: "nearest" });
  }
}

async function ask(event) {
  event.preventDefault();
  if (!current) return;
  const question = $("question").value.trim();
  if (!question) return;
  status(`Asking: ${question}`);
  const response = await fetch(`/v1/ask?include_images=true&question=${encodeURIComponent(question)}`, {
    method: "POST", body: form(current), headers: headers() });
  if (!response.ok) { status(`Error: ${await errorText(response)}`); return; }
  showAnswer(await response.json());
  status("Answered.");
}

function setUp() {
  const drop = $("drop");
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    if (event.dataTransfer.files.length) readDocument(event.dataTransfer.files[0]);
  });
  $("file").addEventListener("change", (event) => {
    if (event.target.files.length) readDocument(event.target.files[0]);
  });
  $("pdf").addEventListener("click", downloadPdf);
  $("ask").addEventListener("submit", ask);
  $("key").addEventListener("change", (event) => {
    sessionStorage.setItem("vlmcli-key", event.target.value);
    connect();
  });
  connect();
}

setUp();
