"""What each primitive computes and how its VJP uses the upstream gradient g, as TeX for the
stepper page (rendered as MathML), with the names of its arguments and what a fused node fuses.

Keyed by the primitive's table name (`node.prim.name`); a primitive missing here is drawn with
its name alone, so a new primitive never breaks a drawing.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Formula:
    """title: the node's label; args: argument names by position; fuses: what a fused node does
    in one node ('' if not fused); forward / backward: TeX of the output and of the VJP."""

    title: str
    args: tuple[str, ...] = ()
    fuses: str = ""
    forward: str = ""
    backward: str = ""


_ELEMENTWISE = r"\text{(summed over broadcast axes)}"

FORMULAS: dict[str, Formula] = {
    "add": Formula("Add", ("a", "b"), "", "y = a + b",
                   r"\bar a = g, \quad \bar b = g \quad " + _ELEMENTWISE),
    "sub": Formula("Sub", ("a", "b"), "", "y = a - b",
                   r"\bar a = g, \quad \bar b = -g"),
    "mul": Formula("Mul", ("a", "b"), "", r"y = a \odot b",
                   r"\bar a = g \odot b, \quad \bar b = g \odot a"),
    "div": Formula("Div", ("a", "b"), "", "y = a / b",
                   r"\bar a = g / b, \quad \bar b = -g \odot y / b"),
    "pow": Formula("Pow", ("x", "p"), "", "y = x^p",
                   r"\bar x = g \odot p\, x^{p-1}, \quad \bar p = g \odot y \log x"),
    "neg": Formula("Neg", ("x",), "", "y = -x", r"\bar x = -g"),
    "exp": Formula("Exp", ("x",), "", "y = e^x", r"\bar x = g \odot y"),
    "log": Formula("Log", ("x",), "", r"y = \log x", r"\bar x = g / x"),
    "sqrt": Formula("Sqrt", ("x",), "", r"y = \sqrt{x}", r"\bar x = g / (2 y)"),
    "abs": Formula("Abs", ("x",), "", r"y = |x|", r"\bar x = g \odot \operatorname{sign}(x)"),
    "sign": Formula("Sign", ("x",), "", r"y = \operatorname{sign}(x)", r"\bar x = 0"),
    "tanh": Formula("Tanh", ("x",), "", r"y = \tanh x", r"\bar x = g \odot (1 - y^2)"),
    "sigmoid": Formula("Sigmoid", ("x",), "", r"y = \sigma(x) = \frac{1}{1 + e^{-x}}",
                       r"\bar x = g \odot y (1 - y)"),
    "relu": Formula("ReLU", ("x",), "", r"y = \max(0, x)", r"\bar x = g \odot [y > 0]"),
    "clamp": Formula("Clamp", ("x",), "", r"y = \min(\max(x, a), b)",
                     r"\bar x = g \odot [a \le x \le b]"),
    "where": Formula("Where", ("condition", "a", "b"), "", r"y = c \;?\; a : b",
                     r"\bar a = g \odot c, \quad \bar b = g \odot (1 - c)"),
    "astype": Formula("Cast", ("x",), "", r"y = x \text{ in another dtype}",
                      r"\bar x = g \text{ in } x\text{'s dtype}"),
    "matmul": Formula("MatMul", ("A", "B"), "", "Y = A B",
                      r"\bar A = G B^\top, \quad \bar B = A^\top G"),
    "linear": Formula("Linear", ("input", "weight", "bias"), "",
                      r"z = x W^\top + b",
                      r"\bar x = g W, \quad \bar W = g^\top x, \quad \bar b = \sum_n g_n"),
    "linear_relu": Formula(
        "Linear+ReLU", ("input", "weight", "bias"), "Linear then ReLU",
        r"a = \max(0, x W^\top + b)",
        r"g' = g \odot [a > 0], \quad \bar x = g' W, \quad \bar W = g'^\top x, \quad "
        r"\bar b = \sum_n g'_n"),
    "sum": Formula("Sum", ("x",), "", r"y = \sum_i x_i", r"\bar x = g \text{ broadcast to } x"),
    "amax": Formula("Max", ("x",), "", r"y = \max_i x_i",
                    r"\bar x = g \text{ shared among the maxima}"),
    "reshape": Formula("Reshape", ("x",), "", r"y = x \text{ reshaped}",
                       r"\bar x = g \text{ reshaped back}"),
    "transpose": Formula("Transpose", ("x",), "", r"y = x^\top",
                         r"\bar x = g^\top"),
    "broadcast_to": Formula("Broadcast", ("x",), "", r"y = x \text{ broadcast}",
                            r"\bar x = g \text{ summed over the broadcast axes}"),
    "sum_to": Formula("SumTo", ("x",), "", r"y = x \text{ summed to a shape}",
                      r"\bar x = g \text{ broadcast back}"),
    "getitem": Formula("Index", ("x",), "", r"y = x[i]", r"\bar x[i] += g"),
    "scatter_add": Formula("ScatterAdd", ("x",), "", r"y[i] += x",
                           r"\bar x = g[i]"),
    "cat": Formula("Cat", (), "", r"y = [x_1, x_2, \ldots]", r"\bar x_k = g_k \text{ (its slice)}"),
    "softmax": Formula("Softmax", ("x",), "", r"p_i = \frac{e^{x_i}}{\sum_c e^{x_c}}",
                       r"\bar x = p \odot \left(g - \sum_c g_c p_c\right)"),
    "log_softmax": Formula("LogSoftmax", ("x",), "",
                           r"y_i = x_i - \log \sum_c e^{x_c}",
                           r"\bar x = g - e^{y} \sum_c g_c"),
    "softplus": Formula("Softplus", ("x",), "", r"y = \log(1 + e^x)",
                        r"\bar x = g \odot \sigma(x)"),
    "softmax_cross_entropy": Formula(
        "Softmax+CrossEntropy", ("logits", "target"),
        "softmax, −log of the target class's probability, the batch reduction",
        r"L = -\frac{1}{N} \sum_n \log p_{n,\hat c_n}, \quad p_n = \operatorname{softmax}(o_n)",
        r"\bar o = g\, \frac{p - \operatorname{onehot}(\hat c)}{N}"),
    "bce_with_logits": Formula(
        "Sigmoid+BCE", ("logits", "target"), "sigmoid, log, binary cross-entropy",
        r"L = -\left[y \log \sigma(o) + (1 - y) \log(1 - \sigma(o))\right]",
        r"\bar o = g \odot (\sigma(o) - y)"),
    "bce": Formula("BCE", ("p", "target"), "",
                   r"L = -\left[y \log p + (1 - y) \log(1 - p)\right]",
                   r"\bar p = g \odot \frac{p - y}{p (1 - p)}"),
    # the layers past the MLP: convolution (im2col + one GEMM), normalization, pooling
    "conv": Formula("Conv", ("input", "weight", "bias"), "",
                    r"y_{n,o,p} = b_o + \sum_{c,k} W_{o,c,k}\, x_{n,c,sp+dk}",
                    r"\bar x = \operatorname{conv}^\top(g, W), \quad "
                    r"\bar W = \sum_{n,p} g_{n,o,p}\, x_{n,c,sp+dk}, \quad "
                    r"\bar b = \sum_{n,p} g_{n,o,p}"),
    "conv_input_grad": Formula("ConvInputGrad", ("g", "weight"), "",
                               r"\bar x = \operatorname{conv}^\top(g, W)", ""),
    "conv_weight_grad": Formula("ConvWeightGrad", ("g", "input"), "",
                                r"\bar W = \sum_{n,p} g_{n,o,p}\, x_{n,c,sp+dk}", ""),
    "normalize": Formula("Normalize", ("input", "weight", "bias"), "",
                         r"y = \gamma \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}} + \beta",
                         r"\bar x = \frac{\gamma}{\sigma}\left(g - \operatorname{mean}(g) - "
                         r"\hat x \operatorname{mean}(g \hat x)\right), \quad "
                         r"\bar\gamma = \sum g \hat x, \quad \bar\beta = \sum g"),
    "max_pool": Formula("MaxPool", ("input",), "", r"y_p = \max_{k} x_{sp+k}",
                        r"\bar x_{\arg\max} += g_p"),
    "avg_pool": Formula("AvgPool", ("input",), "", r"y_p = \frac{1}{K} \sum_k x_{sp+k}",
                        r"\bar x_{sp+k} += g_p / K"),
    "embedding": Formula("Embedding", ("weight", "indices"), "", r"y_n = W_{i_n}",
                         r"\bar W_{i_n} += g_n"),
}

# Reading guide printed once on the page: a bar over a name is the gradient of the loss with
# respect to it, g the gradient arriving at the node's output.
NOTATION = r"g = \frac{\partial L}{\partial y}, \quad \bar x = \frac{\partial L}{\partial x}"


def formula_for(prim_name: str) -> Formula:
    """The entry for a primitive, or one made from its name."""
    if prim_name in FORMULAS:
        return FORMULAS[prim_name]
    return Formula("".join(part.capitalize() for part in prim_name.split("_")))
