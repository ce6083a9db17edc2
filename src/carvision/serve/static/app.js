// The upload page of `carvision serve`: plain JS, no build step, nothing loaded from elsewhere.
// Sends the chosen photo to POST /v1/predict and draws the answer: the car's box over the photo (scaled from the
// answer's upright px), the make/model top-5 as bars, the viewpoint, and the service's own words for errors.
"use strict";

const NOTES = {
  no_car_found: "The detector found no car in this photo.",
  partial_car: "The car is too small or cut off in this photo to be recognised reliably.",
};

const $ = (id) => document.getElementById(id);
const pct = (p) => `${(100 * p).toFixed(1)} %`;
let photoUrl = null;

function setStatus(text) {
  $("status").textContent = text;
}

function showError(message, code) {
  $("error-message").textContent = message + (code ? ` (${code})` : "");
  $("error").hidden = false;
  setStatus("");
}

function reset() {
  $("error").hidden = true;
  $("result").hidden = true;
  $("box").hidden = true;
  $("note").hidden = true;
  $("top5").replaceChildren();
  document.body.dataset.state = "busy";
}

function loaded(img) {
  return img.complete && img.naturalWidth ? Promise.resolve() : img.decode().catch(() => undefined);
}

function drawBox(answer, img) {
  const box = $("box");
  if (!answer.box) {
    box.hidden = true;
    return;
  }
  // The answer's box is in upright full-resolution px; "size" is that frame. The browser shows the photo upright
  // too (it applies the EXIF orientation to <img>), so fractions of the size place the box on the shown photo.
  const [w, h] = answer.size || [img.naturalWidth, img.naturalHeight];
  const [x0, y0, x1, y1] = answer.box;
  box.style.left = `${(100 * x0) / w}%`;
  box.style.top = `${(100 * y0) / h}%`;
  box.style.width = `${(100 * (x1 - x0)) / w}%`;
  box.style.height = `${(100 * (y1 - y0)) / h}%`;
  box.dataset.box = answer.box.join(",");
  const score = answer.box_score == null ? "" : ` ${answer.box_score.toFixed(2)}`;
  $("box-label").textContent = `car${score}`;
  box.setAttribute("aria-label", `the car's box, score${score || " unknown"}`);
  box.hidden = false;
}

function drawBars(top) {
  const list = $("top5");
  top.forEach((t, i) => {
    const li = document.createElement("li");
    li.setAttribute("aria-label", `${t.label}: ${pct(t.prob)}`);
    const label = document.createElement("span");
    label.className = "label";
    label.textContent = t.label;
    const track = document.createElement("span");
    track.className = "track";
    track.setAttribute("aria-hidden", "true");
    const fill = document.createElement("span");
    fill.className = i === 0 ? "fill top" : "fill";
    fill.style.width = `${Math.max(0, Math.min(1, t.prob)) * 100}%`;
    track.append(fill);
    const value = document.createElement("span");
    value.className = "pct";
    value.textContent = pct(t.prob);
    li.append(label, track, value);
    list.append(li);
  });
}

function describeModels(models) {
  // A registry model by its name and version (models:/car-classifier@champion -> car-classifier v3), a file by
  // the end of its path.
  const name = (m) => {
    if (m.source.startsWith("models:/")) {
      const registered = m.source.slice("models:/".length).split(/[@/]/)[0];
      return m.version ? `${registered} v${m.version}` : registered;
    }
    return m.source.split("/").slice(-3).join("/");
  };
  const parts = ["car_filter", "make_model", "viewpoint"].filter((t) => models && models[t]).map((t) => name(models[t]));
  if (models && models.detector) parts.push(`detector ${models.detector.name}`);
  return parts.length ? `Answered by ${parts.join(", ")}.` : "";
}

async function show(answer, models, img) {
  await loaded(img);
  const verdict = $("verdict");
  verdict.textContent = answer.is_car
    ? `A car photo (car probability ${pct(answer.car_prob)})`
    : `Not a car photo (car probability ${pct(answer.car_prob)})`;
  verdict.className = answer.is_car ? "verdict car" : "verdict not-car";
  const note = answer.car_box_note ? NOTES[answer.car_box_note] || answer.car_box_note : "";
  if (!answer.is_car && !note) {
    $("note").textContent = "The make and model below are the model's guesses for a photo it does not see as a car.";
    $("note").hidden = false;
  } else if (note) {
    $("note").textContent = note;
    $("note").hidden = false;
  }
  $("top5").classList.toggle("muted", !answer.is_car);
  drawBars(answer.make_model);
  $("viewpoint").textContent = answer.viewpoint.label;
  $("viewpoint-prob").textContent = `(${pct(answer.viewpoint.prob)})`;
  $("models").textContent = describeModels(models);
  $("caption").textContent =
    answer.crop === "detector" ? "The car models saw the boxed crop." : "The models saw the whole photo.";
  $("result").hidden = false;
  drawBox(answer, img);
  setStatus("Done.");
  document.body.dataset.state = "done";
}

async function recognise(file) {
  reset();
  if (!file) return;
  const img = $("photo");
  if (photoUrl) URL.revokeObjectURL(photoUrl);
  photoUrl = URL.createObjectURL(file);
  img.src = photoUrl;
  img.alt = `The photo you chose: ${file.name}`;
  setStatus(`Recognising ${file.name} ...`);
  const body = new FormData();
  body.append("files", file, file.name);
  let response, json;
  try {
    response = await fetch("/v1/predict", { method: "POST", body });
  } catch (e) {
    document.body.dataset.state = "error";
    showError(`The service cannot be reached: ${e.message}`);
    return;
  }
  try {
    json = await response.json();
  } catch (e) {
    json = null;
  }
  if (!response.ok || !json) {
    const err = json && json.error;
    document.body.dataset.state = "error";
    showError(err ? err.message : `The service answered ${response.status} ${response.statusText}`, err && err.code);
    return;
  }
  const answer = json.results[0];
  if (answer.error) {
    document.body.dataset.state = "error";
    showError(answer.error.message, answer.error.code);
    return;
  }
  await show(answer, json.models, img);
}

function init() {
  const input = $("file");
  const zone = $("upload");
  $("curl").textContent = `curl -F files=@photo.jpg ${location.origin}/v1/predict`;
  input.addEventListener("change", () => recognise(input.files[0]));
  zone.addEventListener("submit", (e) => e.preventDefault());
  ["dragenter", "dragover"].forEach((type) =>
    zone.addEventListener(type, (e) => {
      e.preventDefault();
      zone.classList.add("over");
    }),
  );
  ["dragleave", "drop"].forEach((type) => zone.addEventListener(type, () => zone.classList.remove("over")));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    const files = e.dataTransfer && e.dataTransfer.files;
    if (!files || !files.length) return;
    if (files.length > 1) setStatus("One photo at a time here (the API takes several): recognising the first.");
    recognise(files[0]);
  });
  document.body.dataset.state = "ready";
}

init();
