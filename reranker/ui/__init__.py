"""The Gradio app: layout and thin callbacks. The work happens in ranking / store / export / evaluate.

One module per tab, each with its views (plain functions of the Arena, tested without a
browser), its `layout()` (the components) and its `wire()` (the events):

- `rank_tab`: both models side by side on an upload (the /rank endpoint);
- `annotate_tab`: judge pages, keyboard first (static/shortcuts.js), with the team's
  `guidelines` (/judge, /undo);
- `export_tab`: hard negatives as training data (/export);
- `evaluate_tab`: the models against the human labels (/evaluate); a mistake or a query opens
  in Annotate (`wire_open_in_annotate`).

Rank and Evaluate open the Annotate tab, so they import `annotate_tab`; `blocks` lays the four
out in one gr.Blocks and wires them; nothing else imports a tab. Around them: `arena`
(what all sessions share), `gpu` (the model work under spaces.GPU), `annotators` (who judges,
whose labels), `speed_notes`, `text`.

Everything a user typed or named is escaped before it is rendered as Markdown or in a toast
(`text.escape`, `text.plain`), and Markdown never renders LaTeX (`text.markdown`).
Tests change behaviour through environment variables, or patch a name in the module that uses it.
"""

from . import annotate_tab, annotators, arena, blocks, evaluate_tab, export_tab, gpu, guidelines, rank_tab, speed_notes, text
from .arena import Arena, create_arena, shut_down
from .blocks import build_app, launch_options

__all__ = ["Arena", "build_app", "create_arena", "launch_options", "shut_down", "annotate_tab", "annotators", "arena",
           "blocks", "evaluate_tab", "export_tab", "gpu", "guidelines", "rank_tab", "speed_notes", "text"]
