"""The Gradio app: layout and thin callbacks. The work happens in ranking / store / export / evaluate.

One module per tab, each with its views (plain functions of the Arena, tested without a
browser), its `layout()` and its `wire()`:

- `rank_tab`: both models side by side on an upload (/rank);
- `annotate_tab`: judge pages, keyboard first (static/shortcuts.js), with `guidelines`;
- `export_tab`: hard negatives as training data (/export);
- `evaluate_tab`: the models against the human labels, mistakes opened in Annotate.

Around them: `arena` (what all sessions share), `blocks` (the tabs put together, the API-only
endpoints /judge, /undo, /evaluate, the launch options), `gpu` (the model work under
spaces.GPU), `identity` (who judges), `machine` (speed notes), `text` (escaping and names).
"""

from .arena import Arena, create_arena, shut_down
from .blocks import build_app, launch_options

__all__ = ["Arena", "build_app", "create_arena", "launch_options", "shut_down"]
