"""Reflection: walk SymPy expression trees and turn them into highlight maps.

Each cell of a derived array is a sum of terms. :class:`Reflector` walks such an expression
through ``func``/``args`` and dispatches on the node's class, in the style of SymPy's
printers: ``_walk_Add``, ``_walk_Mul``, ``_walk_Indexed`` and so on, looked up along the
class's MRO. A node it has no method for is an error naming that node.

A term is a product of factors. A factor that is a cell (``Indexed``, a scalar ``Symbol``,
an upstream ``Derivative(L, z)``) is itself; a factor that is not a plain product
(``Max``, ``Heaviside``, ``exp``, ``log``, a power, ``Piecewise``) contributes every cell
inside it, since the term is made of them all. Constants are terms without cells.

The result is plain data (:mod:`convviz.highlights`): which cells of which arrays make up
each term, and for each role the distinct cells used.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from typing import Any

import sympy
from sympy.core.basic import Basic

from convviz.derivation import GC_PAUSE_PRODUCTS, Derivation, paused_gc
from convviz.highlights import ROLES, Cell, HighlightMap, Index, Step
from convviz.notation import expression_latex

__all__ = ["ReflectionError", "Reflector", "Term", "highlight_map", "step_for"]

#: One addend: its numeric coefficient and its indexed factors.
Term = tuple[sympy.Expr, tuple[Cell, ...]]


_ONE = sympy.S.One
#: SymPy's integer classes (``Integer`` and its singletons), for a quick check of indices.
_INTEGER_CLASSES = frozenset(
    {sympy.Integer, type(sympy.S.Zero), type(sympy.S.One), type(sympy.S.NegativeOne)}
)

#: Node classes whose cells all belong to the term they appear in.
_COMPOSITE = (sympy.Function, sympy.Pow, sympy.Piecewise, sympy.Abs)
#: Nodes of those classes that are not composites of cells: an upstream derivative is a
#: cell, an undefined function an error (its method decides both).
_NOT_COMPOSITE = (sympy.Derivative, sympy.core.function.AppliedUndef)


class ReflectionError(ValueError):
    """An expression holds a node that is not a cell, a constant or a known function."""

    def __init__(self, node: Basic, whole: Basic, why: str) -> None:
        super().__init__(f"cannot reflect {sympy.sstr(node)!r} in {_short(whole)}: {why}")
        self.node = node


def _short(expr: Basic, limit: int = 80) -> str:
    text = str(sympy.sstr(expr))
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Reflector:
    """Turns sum-of-products expressions into lists of :class:`Cell` factors.

    Parameters
    ----------
    roles
        Maps each ``IndexedBase`` (or scalar ``Symbol``) to the role of its cells.
    derivative_roles
        Maps the ``IndexedBase`` of a cell ``x`` to the role that ``Derivative(L, x)``
        plays (``z`` -> ``grad_output``).
    """

    def __init__(
        self,
        roles: Mapping[Basic, str],
        derivative_roles: Mapping[Basic, str] | None = None,
        order: tuple[str, ...] = ROLES,
    ) -> None:
        self.roles = dict(roles)
        self.derivative_roles = dict(derivative_roles or {})
        self._order = {role: n for n, role in enumerate(order)}
        for role in (*self.roles.values(), *self.derivative_roles.values()):
            self._order.setdefault(role, len(self._order))
        self._unknown = len(self._order)
        self._cells: dict[Basic, Cell] = {}
        # id of a cell node -> (the node, its cell's sort key, its cell): see _collect
        self._by_id: dict[int, tuple[tuple[int, Index], Cell, Basic]] = {}
        # per context (_ARG, _FACTOR, _TERM): what _collect does with a node's class
        self._actions: tuple[dict[type, int], ...] = ({}, {}, {})
        self._methods: dict[type, Callable[[Reflector, Any, Basic], list[Term]]] = {}
        #: Short name of each role, for equations of expressions that are not products.
        self.short_names: dict[str, str] = {}
        #: Whether the last expression walked was a plain sum of products of cells.
        self.plain = True

    @classmethod
    def for_derivation(cls, derivation: Derivation) -> Reflector:
        """Reflector that knows the roles of a layer's symbols."""
        roles = {base: role for role, base in derivation.bases.items()}
        derivative = {}
        if not derivation.layer.loss and "output" in derivation.bases:
            derivative = {derivation.bases["output"]: "grad_output"}
        return cls(roles, derivative, derivation.layer.roles)

    def _sort_key(self, cell: Cell) -> tuple[int, Index]:
        # built each time: cheaper than hashing the cell to look it up
        return (self._order.get(cell.role, self._unknown), cell.index)

    # ------------------------------------------------------------------ walking
    def terms(self, expr: Basic) -> list[Term]:
        """The addends of ``expr``, each as ``(coefficient, factors)``, sorted."""
        self.plain = True
        found = self._walk(expr, expr)
        if len(found) > 1:
            key = self._sort_key
            found.sort(key=lambda t: [key(c) for c in t[1]])
        return found

    def _walk(self, node: Basic, whole: Basic) -> list[Term]:
        method = self._methods.get(type(node)) or self._method(node, whole)
        return method(self, node, whole)

    def _method(self, node: Basic, whole: Basic) -> Callable[[Reflector, Any, Basic], list[Term]]:
        """The ``_walk_*`` method for ``node``'s class, along its MRO (remembered)."""
        method = self._methods.get(type(node))
        if method is None:
            for klass in type(node).__mro__:
                candidate = getattr(type(self), f"_walk_{klass.__name__}", None)
                if candidate is not None:
                    method = candidate
                    break
            else:
                raise ReflectionError(node, whole, f"unexpected {type(node).__name__} node")
            self._methods[type(node)] = method
        return method

    def _walk_Add(self, node: sympy.Add, whole: Basic) -> list[Term]:
        out: list[Term] = []
        known = self._cells
        key = self._sort_key
        quick = self._quick_cell
        for arg in node.args:
            kind = type(arg)
            if kind is sympy.Mul:  # inlined fast path of _walk_Mul: products of cells
                cells = [known.get(a) or quick(a) for a in arg.args]
                if len(cells) == 2:
                    first, second = cells
                    if first is not None and second is not None and first != second:
                        pair = (first, second) if key(first) <= key(second) else (second, first)
                        out.append((_ONE, pair))
                        continue
                elif not any(c is None for c in cells) and len(set(cells)) == len(cells):
                    found = [c for c in cells if c is not None]
                    found.sort(key=key)
                    out.append((_ONE, tuple(found)))
                    continue
            elif kind is sympy.Indexed or kind is sympy.Symbol:
                cell = known.get(arg)
                if cell is not None:
                    out.append((_ONE, (cell,)))
                    continue
            out.extend(self._walk(arg, whole))
        return out

    def _walk_Mul(self, node: sympy.Mul, whole: Basic) -> list[Term]:
        coefficient: sympy.Expr = sympy.S.One
        found: dict[tuple[int, Index], Cell] = {}
        count = 0  # factors met, the cells of a composite factor counted once each
        by_id = self._by_id
        factor_actions = self._actions[_FACTOR]
        for arg in node._args:
            action = factor_actions.get(type(arg))
            if action is None:
                action = self._action(arg, _FACTOR, whole)
            if action == _CELL:
                # a cell met before is known by id: the node is not hashed
                hit = by_id.get(id(arg)) or self._cell_hit(arg, whole)
                found[hit[0]] = hit[1]
                count += 1
            elif action == _ARG:  # a composite factor: its cells (plain is False from here)
                self._collect(arg, whole, found)
            elif isinstance(arg, sympy.Number):
                coefficient *= arg
            else:
                met, scale = self._walk_factor(arg, whole, found)
                count += met
                if scale is not _ONE:
                    coefficient *= scale
        if len(found) != count:
            self.plain = False
        if len(found) == 1:
            return [(coefficient, tuple(found.values()))]
        return [(coefficient, tuple([found[k] for k in sorted(found)]))]

    def _walk_factor(
        self, arg: Basic, whole: Basic, found: dict[tuple[int, Index], Cell]
    ) -> tuple[int, sympy.Expr]:
        """Add the cells of a factor only its method can take (a sum, a nested product).

        Returns how many cells were met and the factor's coefficient.
        """
        key = self._sort_key
        sub = self._walk(arg, whole)
        if len(sub) != 1:
            # a sum inside a product: the term is made of every cell of the sum (and is
            # not a plain product, whatever the count)
            self.plain = False
            for _, cs in sub:
                for c in cs:
                    found[key(c)] = c
            return 0, _ONE
        for c in sub[0][1]:
            found[key(c)] = c
        return len(sub[0][1]), sub[0][0]

    def _inside(self, node: Basic, whole: Basic) -> list[Cell]:
        """Every cell inside a node that is not a plain product (sorted, distinct)."""
        found = self._collect(node, whole, {})
        return [found[k] for k in sorted(found)]

    def _collect(
        self, node: Basic, whole: Basic, found: dict[tuple[int, Index], Cell]
    ) -> dict[tuple[int, Index], Cell]:
        """Add the cells inside a node that is not a plain product to ``found``, by key.

        The node's arguments are visited as :meth:`_walk` would visit them (the same
        methods decide what each node is, and the same nodes are errors), but only the
        cells are collected, with an explicit stack instead of the term lists. A cell
        node met here is remembered by its ``id`` (with the node, which keeps the id),
        which is cheaper to look up than the node.
        """
        self.plain = False
        by_id = self._by_id
        tables = self._actions
        stack: list[tuple[tuple[Basic, ...], int]] = [(node._args, _ARG)]
        pop, push = stack.pop, stack.append
        while stack:
            args, context = pop()
            table = tables[context]
            for arg in args:
                action = table.get(type(arg))
                if action is None:
                    action = self._action(arg, context, whole)
                if action == _CELL:  # a cell met before is known by id
                    hit = by_id.get(id(arg)) or self._cell_hit(arg, whole)
                    found[hit[0]] = hit[1]
                elif action >= 0:  # visit the arguments in that context
                    push((arg._args, action))
                elif action == _WALK:  # a node only its method can take
                    for _, cells in self._walk(arg, whole):
                        for cell in cells:
                            found[self._sort_key(cell)] = cell
        return found

    def _cell_hit(self, node: Basic, whole: Basic) -> tuple[tuple[int, Index], Cell, Basic]:
        """``(sort key, cell, node)`` of a cell node, remembered by the node's ``id``."""
        cell = self._quick_cell(node)
        if cell is None:
            ((_, (cell,)),) = self._walk(node, whole)
        hit = (self._sort_key(cell), cell, node)  # the node keeps its id from being reused
        self._by_id[id(node)] = hit
        return hit

    def _action(self, node: Basic, context: int, whole: Basic) -> int:
        """What :meth:`_collect` does with a node of this class met in ``context``.

        The context in which to visit its arguments (``_ARG``, ``_FACTOR``, ``_TERM``),
        ``_SKIP`` (a constant) or ``_WALK`` (walk it: a cell, or a node whose method
        decides, errors included). Remembered per class and context.
        """
        action: int | None = None
        if context == _ARG:  # an argument of the node, as _inside took them
            if isinstance(node, sympy.Number | sympy.logic.boolalg.BooleanAtom):
                action = _SKIP
            elif isinstance(node, sympy.Tuple):
                action = _ARG
        elif context == _FACTOR:  # a factor of a product, as _walk_Mul took them
            if isinstance(node, sympy.Number):
                action = _SKIP
            elif isinstance(node, _COMPOSITE) and not isinstance(node, _NOT_COMPOSITE):
                action = _ARG
        if action is None:
            method = self._method(node, whole)
            visit = _VISITS.get(method)
            if method in _CELL_METHODS and type(node) in _CELL_CLASSES:
                action = _CELL
            elif visit is None or (
                visit == _ARG and isinstance(node, sympy.core.function.AppliedUndef)
            ):
                action = _WALK
            else:
                action = _SKIP if visit == _LEAF else visit
        self._actions[context][type(node)] = action
        return action

    def _composite(self, node: Basic, whole: Basic) -> list[Term]:
        return [(sympy.S.One, tuple(self._inside(node, whole)))]

    def _walk_Function(self, node: sympy.Function, whole: Basic) -> list[Term]:
        """``exp``, ``log``, ``tanh``, ``Heaviside``, ``Max`` ...: one term of all their cells."""
        if isinstance(node, sympy.core.function.AppliedUndef):
            raise ReflectionError(node, whole, "an undefined function is not a cell")
        return self._composite(node, whole)

    def _walk_MinMaxBase(self, node: sympy.Max, whole: Basic) -> list[Term]:
        return self._composite(node, whole)

    def _walk_Pow(self, node: sympy.Pow, whole: Basic) -> list[Term]:
        return self._composite(node, whole)

    def _walk_Piecewise(self, node: sympy.Piecewise, whole: Basic) -> list[Term]:
        return self._composite(node, whole)

    def _walk_ExprCondPair(self, node: Basic, whole: Basic) -> list[Term]:
        return self._composite(node, whole)

    def _walk_Relational(self, node: Basic, whole: Basic) -> list[Term]:
        return self._composite(node, whole)

    def _walk_BooleanFunction(self, node: Basic, whole: Basic) -> list[Term]:
        return self._composite(node, whole)

    def _walk_Zero(self, node: Basic, whole: Basic) -> list[Term]:
        return []

    def _walk_Number(self, node: sympy.Number, whole: Basic) -> list[Term]:
        # a constant term (softmax cross-entropy's -1 at the true class) has no cells
        self.plain = False
        return [(node, ())]

    def _walk_BooleanAtom(self, node: Basic, whole: Basic) -> list[Term]:
        return []

    def _walk_Indexed(self, node: sympy.Indexed, whole: Basic) -> list[Term]:
        known = self._cells.get(node) or self._quick_cell(node)
        if known is not None:
            return [(sympy.S.One, (known,))]
        return [(sympy.S.One, (self._cell(node, node.base, node.indices, self.roles, whole),))]

    def _walk_Symbol(self, node: sympy.Symbol, whole: Basic) -> list[Term]:
        return [(sympy.S.One, (self._cell(node, node, (), self.roles, whole),))]

    def _walk_Derivative(self, node: sympy.Derivative, whole: Basic) -> list[Term]:
        known = self._cells.get(node)
        if known is not None:
            return [(sympy.S.One, (known,))]
        args = node.args
        if len(args) == 2 and type(args[1]) is sympy.Tuple and args[1].args[1] is _ONE:
            variables = args[1].args[:1]  # by one variable once: node.variables, quickly
        else:
            variables = node.variables
        if len(variables) != 1 or not isinstance(variables[0], sympy.Indexed | sympy.Symbol):
            raise ReflectionError(node, whole, "only first derivatives by one cell are cells")
        var = variables[0]
        base = var.base if isinstance(var, sympy.Indexed) else var
        indices = var.indices if isinstance(var, sympy.Indexed) else ()
        return [(sympy.S.One, (self._cell(node, base, indices, self.derivative_roles, whole),))]

    def _quick_cell(self, node: Basic) -> Cell | None:
        """The cell of an ``Indexed`` node of a known array with integer indices, else None.

        What :meth:`_walk_Indexed` does for such a node, without dispatching; anything
        else (a derivative, a number, an unknown array) is left to the general path.
        """
        if type(node) is not sympy.Indexed:
            return None
        args = node.args
        role = self.roles.get(args[0])
        if role is None:
            return None
        indices = args[1:]
        if not _INTEGER_CLASSES.issuperset(map(type, indices)):
            return None
        cell = Cell(role, tuple([i.p for i in indices]))
        self._cells[node] = cell
        return cell

    def cell_of(self, node: Basic) -> Cell | None:
        """The cell a node was reflected into (``None`` if it is not one)."""
        return self._cells.get(node)

    def _cell(
        self,
        node: Basic,
        base: Basic,
        indices: tuple[Any, ...],
        roles: Mapping[Basic, str],
        whole: Basic,
    ) -> Cell:
        cell = self._cells.get(node)
        if cell is not None:
            return cell
        role = roles.get(base)
        if role is None:
            raise ReflectionError(node, whole, f"{sympy.sstr(base)} is not an array of this layer")
        if not all(isinstance(i, sympy.Integer | int) for i in indices):
            raise ReflectionError(node, whole, "indices must be integers")
        cell = Cell(role, tuple(int(i) for i in indices))
        self._cells[node] = cell
        return cell


#: Classes of the nodes a reflector knows as cells (the keys of ``Reflector._cells``).
_CELL_CLASSES = frozenset({sympy.Indexed, sympy.Symbol, sympy.Derivative})

#: How :meth:`Reflector._inside` visits a node's arguments, by the method that walks the
#: node: as arguments of a node not a plain product (``_ARG``, what ``_inside`` does), as
#: factors (``_FACTOR``, what ``_walk_Mul`` does), as terms (``_TERM``, what ``_walk_Add``
#: does, each walked), or not at all (``_LEAF``: constants). Cells, and methods not
#: listed, are left to the method itself.
_ARG, _FACTOR, _TERM, _LEAF = 0, 1, 2, 3
#: What else :meth:`Reflector._collect` does with a node: nothing, take the cell it is,
#: or walk it.
_SKIP, _CELL, _WALK = -1, -2, -3
_VISITS: dict[Any, int] = {
    Reflector._walk_Add: _TERM,
    Reflector._walk_Mul: _FACTOR,
    Reflector._walk_Function: _ARG,
    Reflector._walk_MinMaxBase: _ARG,
    Reflector._walk_Pow: _ARG,
    Reflector._walk_Piecewise: _ARG,
    Reflector._walk_ExprCondPair: _ARG,
    Reflector._walk_Relational: _ARG,
    Reflector._walk_BooleanFunction: _ARG,
    Reflector._walk_Zero: _LEAF,
    Reflector._walk_Number: _LEAF,
    Reflector._walk_BooleanAtom: _LEAF,
}


#: The methods that walk a cell (each gives one term of the one cell).
_CELL_METHODS = frozenset(
    {Reflector._walk_Indexed, Reflector._walk_Symbol, Reflector._walk_Derivative}
)


def step_for(
    reflector: Reflector, target: Cell, expr: Basic, *, expression: bool = True
) -> Step:
    """Reflect one target cell's expression into a :class:`Step`.

    ``expression``: also print the LaTeX of an expression that is not a plain sum of
    products (what the equation panel shows; costly, so only for the steps drawn).
    """
    if type(expr) is sympy.Mul and len(expr.args) == 2:
        # one product of two known cells (dW = dz a): the general path, shortened
        known = reflector._cells
        left, right = expr.args
        first = known.get(left) if type(left) in _CELL_CLASSES else None
        second = known.get(right) if type(right) in _CELL_CLASSES else None
        if first is not None and second is not None and first != second:
            key = reflector._sort_key
            if key(second) < key(first):
                first, second = second, first
            pair: dict[str, tuple[Index, ...]]
            if first.role == second.role:
                pair = {first.role: (first.index, second.index)}
            else:
                pair = {first.role: (first.index,), second.role: (second.index,)}
            reflector.plain = True
            return Step(target, ((first, second),), ("1",), pair)
    terms = reflector.terms(expr)
    highlights: dict[str, tuple[Index, ...]]
    if len(terms) == 1:
        # one term: its cells are distinct and sorted by role (in display order), then
        # by index, so each role's run of them is that role's highlights already
        runs: dict[str, list[Index]] = {}
        for cell in terms[0][1]:
            run = runs.get(cell.role)
            if run is None:
                runs[cell.role] = [cell.index]
            else:
                run.append(cell.index)
        highlights = {role: tuple(run) for role, run in runs.items()}
    else:
        used: dict[str, set[Index]] = {}
        for _, factors in terms:
            for cell in factors:
                indices = used.get(cell.role)
                if indices is None:
                    used[cell.role] = {cell.index}
                else:
                    indices.add(cell.index)
        order = reflector._order
        highlights = {
            role: tuple(sorted(used[role]))
            for role in sorted(used, key=lambda r: order.get(r, 99))
        }
    latex = ""
    if expression and not reflector.plain:
        latex = expression_latex(expr, reflector.cell_of, reflector.short_names)
    if len(terms) == 1:
        coefficient, factors = terms[0]
        return Step(
            target, (factors,), ("1" if coefficient is _ONE else str(coefficient),),
            highlights, latex,
        )
    return Step(
        target=target,
        terms=tuple(f for _, f in terms),
        coefficients=tuple("1" if c is _ONE else str(c) for c, _ in terms),
        highlights=highlights,
        expression=latex,
    )


def _reflector_of(derivation: Derivation) -> Reflector:
    """The derivation's reflector, made once: every map of a layer meets the same cells."""
    known = derivation.__dict__.get("_reflector")
    if known is None:
        known = Reflector.for_derivation(derivation)
        known.short_names = {a.role: a.short for a in derivation.layer.all_arrays}
        object.__setattr__(derivation, "_reflector", known)
    return known


def highlight_map(
    derivation: Derivation, op: str, *, expressions: int | None = None
) -> HighlightMap:
    """The highlight map of ``op`` (one of the layer type's ops).

    Steps follow the target array in row-major order; each step's highlights come from
    reflecting that cell's expression, nothing else. ``expressions``: how many of the
    first steps get :attr:`Step.expression` (``None``: all; a clip passes its step count).
    """
    layer = derivation.layer
    if op not in layer.op_names:
        raise ValueError(f"unknown op {op!r}; expected one of {', '.join(layer.op_names)}")
    decl = layer.op(op)
    if decl.map_op:
        base = highlight_map(derivation, decl.map_op, expressions=expressions)
        return HighlightMap(op=op, arrays=base.arrays, steps=base.steps)
    reflector = _reflector_of(derivation)
    role = decl.target
    targets = derivation.targets(op)
    with paused_gc(derivation.spec.products >= GC_PAUSE_PRODUCTS):
        # 1-based indices in row-major order, as targets.flat visits the cells
        indices = itertools.product(*(range(1, size + 1) for size in targets.shape))
        steps = [
            step_for(
                reflector,
                Cell(role, index),
                expr,
                expression=expressions is None or n < expressions,
            )
            for n, (index, expr) in enumerate(zip(indices, targets.flat, strict=True))
        ]
    return HighlightMap(op=op, arrays=derivation.arrays_for(op), steps=tuple(steps))
