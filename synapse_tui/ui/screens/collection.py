"""Choose the data collection (spec, or group by stem with a spec map, and meta) for uploads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option

from synapse_tui.engine.collections import Collection, CollectionPlan
from synapse_tui.engine.errors import ConfigError
from synapse_tui.ui.collection_choice import build_plan, suggest_spec_map

NONE = "none"
GROUP = "group"


@dataclass(frozen=True)
class CollectionChoice:
    """What the dialog answered: a plan, or None for plain uploads."""

    plan: CollectionPlan | None


class CollectionScreen(ModalScreen[CollectionChoice | None]):
    """Keyboard only: `tab` moves between the lists and fields, `enter` goes on (and applies
    in the last field), `ctrl+s` applies from anywhere, `escape` cancels (None)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "apply", "Apply"),
    ]

    def __init__(
        self,
        collections: list[Collection],
        current: CollectionPlan | None = None,
        extensions: set[str] | None = None,
    ) -> None:
        super().__init__()
        self.collections = {str(c.id): c for c in collections}
        self.current = current
        self.extensions = extensions or set()

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="dialog", classes="dialog collection-dialog"):
            yield Label("Data collection for the next uploads", classes="dialog-title")
            options = [Option(Text("none: plain uploads"), id=NONE)]
            for key, c in self.collections.items():
                name = c.name or key
                line = Text(f"{name}   #{c.id} · {', '.join(c.specs)}")
                line.stylize("bold", 0, len(name))
                options.append(Option(line, id=key))
            yield OptionList(*options, id="collections", compact=True)
            yield Label("File specification", classes="dialog-label")
            yield OptionList(id="specs", compact=True)
            yield Label("Spec map EXT=NAME,… (group by stem)", classes="dialog-label")
            yield Input(placeholder="EXT=NAME,EXT=NAME", id="spec-map", compact=True)
            yield Label("Meta KEY=VALUE,… (optional)", classes="dialog-label")
            yield Input(placeholder="site=A,batch=7", id="meta", compact=True)
            yield Label("", id="collection-error")
            yield Label(
                "tab: next · enter: choose · ctrl+s: apply · esc: cancel", classes="dialog-hint"
            )

    def on_mount(self) -> None:
        lists = self.query_one("#collections", OptionList)
        plan = self.current
        if plan is not None and str(plan.collection.id) in self.collections:
            lists.highlighted = list(self.collections).index(str(plan.collection.id)) + 1
            self.query_one("#meta", Input).value = ",".join(
                f"{k}={v}" for k, v in plan.meta.items()
            )
        else:
            lists.highlighted = 1 if self.collections else 0
        self._fill_specs()
        lists.focus()

    # -- the parts --------------------------------------------------------------------------

    @property
    def collection(self) -> Collection | None:
        lists = self.query_one("#collections", OptionList)
        if lists.highlighted is None:
            return None
        option = lists.get_option_at_index(lists.highlighted)
        return self.collections.get(option.id or NONE)

    @property
    def group_by_stem(self) -> bool:
        specs = self.query_one("#specs", OptionList)
        if specs.highlighted is None or specs.option_count == 0:
            return False
        return specs.get_option_at_index(specs.highlighted).id == GROUP

    def _fill_specs(self) -> None:
        """The chosen collection's specs, plus group by stem when it has several."""
        specs = self.query_one("#specs", OptionList)
        spec_map = self.query_one("#spec-map", Input)
        specs.clear_options()
        c = self.collection
        specs.disabled = c is None
        if c is None:
            spec_map.value = ""
            self._sync_spec_map()
            return
        for name in c.specs:
            specs.add_option(Option(Text(name), id=f"spec:{name}"))
        if len(c.specs) > 1:
            specs.add_option(Option(Text("group by stem: one unit per stem, spec map"), id=GROUP))
        plan = self.current if self.current and self.current.collection.id == c.id else None
        index = 0
        if plan is not None and plan.group_by_stem:
            index = len(c.specs)
            spec_map.value = ",".join(f"{k}={v}" for k, v in plan.spec_map.items())
        else:
            if plan is not None and plan.spec in c.specs:
                index = c.specs.index(plan.spec)
            spec_map.value = suggest_spec_map(c.specs, self.extensions)
        spec_map.placeholder = ",".join(f"EXT={name}" for name in c.specs)
        specs.highlighted = index
        self._sync_spec_map()

    def _sync_spec_map(self) -> None:
        self.query_one("#spec-map", Input).disabled = not self.group_by_stem
        self.query_one("#meta", Input).disabled = self.collection is None

    def show_error(self, message: str) -> None:
        error = self.query_one("#collection-error", Label)
        error.update(Text(message))
        error.set_class(bool(message), "-shown")
        if message:
            self.call_after_refresh(error.scroll_visible)

    # -- events -----------------------------------------------------------------------------

    @on(OptionList.OptionHighlighted, "#collections")
    def _collection_moved(self) -> None:
        self.show_error("")
        self._fill_specs()

    @on(OptionList.OptionHighlighted, "#specs")
    def _spec_moved(self) -> None:
        self.show_error("")
        self._sync_spec_map()

    @on(OptionList.OptionSelected, "#collections")
    def _collection_chosen(self) -> None:
        if self.collection is None:
            self.action_apply()
        else:
            self.query_one("#specs", OptionList).focus()

    @on(OptionList.OptionSelected, "#specs")
    def _spec_chosen(self) -> None:
        target = "#spec-map" if self.group_by_stem else "#meta"
        self.query_one(target, Input).focus()

    @on(Input.Submitted, "#spec-map")
    def _spec_map_done(self, event: Input.Submitted) -> None:
        event.stop()
        self.query_one("#meta", Input).focus()

    @on(Input.Submitted, "#meta")
    def _meta_done(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_apply()

    # -- actions ----------------------------------------------------------------------------

    def action_apply(self) -> None:
        c = self.collection
        if c is None:
            self.dismiss(CollectionChoice(None))
            return
        group = self.group_by_stem
        specs = self.query_one("#specs", OptionList)
        spec = None
        if not group and specs.highlighted is not None and specs.option_count:
            spec = (specs.get_option_at_index(specs.highlighted).id or "").removeprefix("spec:")
        try:
            plan = build_plan(
                c,
                spec,
                group,
                self.query_one("#spec-map", Input).value,
                self.query_one("#meta", Input).value,
            )
        except ConfigError as exc:
            self.show_error(str(exc))
            return
        self.dismiss(CollectionChoice(plan))

    def action_cancel(self) -> None:
        self.dismiss(None)
