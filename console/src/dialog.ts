// Modal dialogs on the native <dialog>: focus is trapped and Escape closes them.
import { fill, h, message, uid, type Child } from "./dom";

export function openDialog(title: string, ...content: Child[]): { dialog: HTMLDialogElement; close: () => void } {
  const titleId = uid("dialog-title");
  const dialog = h("dialog", { "aria-labelledby": titleId }, h("h2", { id: titleId }, title), content);
  dialog.addEventListener("close", () => dialog.remove());
  document.body.appendChild(dialog);
  dialog.showModal();
  return { dialog, close: () => dialog.close() };
}

/** Copy text to the clipboard; where the browser refuses, select it so Ctrl+C works. */
export async function copy(text: string, input: HTMLInputElement): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    input.focus();
    input.select();
    return false;
  }
}

/** Runs a form's action with its buttons disabled; a refusal is shown in `status`. */
export async function submitting(form: HTMLFormElement, status: HTMLElement, action: () => Promise<void>): Promise<void> {
  const buttons = [...form.querySelectorAll("button")];
  for (const button of buttons) button.disabled = true;
  fill(status);
  try {
    await action();
  } catch (error) {
    fill(status, message("error", (error as Error).message));
  } finally {
    for (const button of buttons) button.disabled = false;
  }
}
