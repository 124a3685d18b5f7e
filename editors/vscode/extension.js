// Starts `whenthen lsp` for .rules files; the server does the rest (see docs/authoring.md).
const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const command = vscode.workspace.getConfiguration("whenthen").get("command", "whenthen");
  const server = { command, args: ["lsp"] };
  client = new LanguageClient(
    "whenthen",
    "whenthen language server",
    { run: server, debug: server },
    { documentSelector: [{ scheme: "file", language: "whenthen" }] }
  );
  context.subscriptions.push({ dispose: () => client && client.stop() });
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
