// Calls to the flywheel JSON API, with the API key the server may ask for.
//
// When a call answers 401 the key dialog opens; the key is kept in sessionStorage (this tab only), sent as
// "Authorization: Bearer KEY", and the call is retried. Calls that hit 401 at the same time share one dialog.

const KEY_STORAGE = "flywheel.apiKey";

/** An API call that failed, with the server's ``detail`` text. */
export class ApiError extends Error {
  constructor(status, detail) {
    super(detail || `HTTP ${status}`);
    this.status = status;
  }
}

let keyPrompt = null;

function storedKey() {
  return sessionStorage.getItem(KEY_STORAGE);
}

function showForgetButton() {
  const button = document.getElementById("forget-key");
  if (button) button.hidden = !storedKey();
}

/** The message of an error answer: ``detail`` as sent, or one "where: what" per problem of a 422. */
async function detailOf(response) {
  try {
    const body = await response.json();
    if (typeof body.detail === "string") return body.detail;
    if (Array.isArray(body.detail)) {
      return body.detail
        .map((item) => {
          const where = (item.loc || []).filter((part) => part !== "body").join(".");
          return where ? `${where}: ${item.msg}` : item.msg;
        })
        .join("; ");
    }
    return JSON.stringify(body.detail);
  } catch {
    return response.statusText;
  }
}

/** Open the key dialog (once, however many calls are waiting) and resolve when a key was entered. */
function askForKey(message) {
  if (keyPrompt) return keyPrompt;
  const dialog = document.getElementById("key-dialog");
  const form = document.getElementById("key-form");
  const input = document.getElementById("key-input");
  document.getElementById("key-error").textContent = message || "";
  keyPrompt = new Promise((resolve) => {
    // Escape would leave every waiting call hanging: the dialog stays until a key is given.
    const onCancel = (event) => event.preventDefault();
    const onSubmit = (event) => {
      event.preventDefault();
      const key = input.value.trim();
      if (!key) return;
      sessionStorage.setItem(KEY_STORAGE, key);
      form.removeEventListener("submit", onSubmit);
      dialog.removeEventListener("cancel", onCancel);
      input.value = "";
      dialog.close();
      keyPrompt = null;
      showForgetButton();
      resolve();
    };
    form.addEventListener("submit", onSubmit);
    dialog.addEventListener("cancel", onCancel);
  });
  dialog.showModal();
  input.focus();
  return keyPrompt;
}

/** Forget the stored key (the next call asks again). */
export function forgetKey() {
  sessionStorage.removeItem(KEY_STORAGE);
  showForgetButton();
}

/**
 * GET ``path`` (relative to the page, e.g. "api/jobs") with ``params`` (empty values left out); the parsed JSON.
 * Throws ApiError for an error answer; an aborted ``signal`` rejects with its reason.
 */
export async function api(path, params = {}, signal = undefined) {
  const url = new URL(path, document.baseURI);
  for (const [key, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "") url.searchParams.set(key, String(value));
  }
  showForgetButton();
  for (;;) {
    const key = storedKey();
    const headers = { Accept: "application/json" };
    if (key) headers.Authorization = `Bearer ${key}`;
    const response = await fetch(url, { headers, signal });
    if (response.status === 401) {
      const detail = await detailOf(response);
      await askForKey(key ? `${detail} Check the key and try again.` : "");
      signal?.throwIfAborted();
      continue;
    }
    if (!response.ok) throw new ApiError(response.status, await detailOf(response));
    return response.json();
  }
}
