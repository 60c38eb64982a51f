"""Shared by the refinement examples: L-BFGS rounds on a negative log-likelihood until a round
gains less than `stop`, printing the errors after each round, then the RESULT line."""
import time

import torch


def fit(x, nll, errors, start_time, max_rounds, stop, max_iter, tolerance_grad, tolerance_change):
    optimizer = torch.optim.LBFGS([x], lr=1.0, max_iter=max_iter, history_size=20, line_search_fn="strong_wolfe",
                                  tolerance_grad=tolerance_grad, tolerance_change=tolerance_change)

    def closure():
        optimizer.zero_grad()
        loss = nll()
        loss.backward()
        return loss

    print("start:", {k: f"{v:.4g}" for k, v in errors().items()})
    previous = float("inf")
    for rnd in range(max_rounds):
        optimizer.step(closure)
        with torch.no_grad():
            loss = float(nll())
        print(f"round {rnd + 1}: -logL = {loss:.10g}", {k: f"{v:.3g}" for k, v in errors().items()},
              f"({time.time() - start_time:.0f} s)")
        if previous - loss < stop:  # the likelihood no longer improves in any meaningful way
            break
        previous = loss
    err = errors()
    print("RESULT " + " ".join(f"{k}={v:.3g}" for k, v in err.items()) + f" seconds={time.time() - start_time:.1f}")
