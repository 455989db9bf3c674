using System;
using System.Collections.Generic;
using System.Linq;
using System.Runtime.ExceptionServices;
using System.Threading;

namespace StatPhysFs.CSharp;

/// <summary>Argument checks with the C# parameter names, and the one cancellation and callback contract of the
/// facade: a cancelled run throws <see cref="OperationCanceledException"/>; an exception from a user callback (or
/// from a worker thread) comes out as itself, never wrapped in an <see cref="AggregateException"/>.</summary>
internal static class Guard
{
    public static T NotNull<T>(T? value, string name) where T : class =>
        value ?? throw new ArgumentNullException(name);

    public static void Finite(double x, string name)
    {
        if (!double.IsFinite(x)) throw new ArgumentException($"{name} must be a finite number, got {x}.", name);
    }

    public static void Positive(double x, string name)
    {
        if (!(double.IsFinite(x) && x > 0)) throw new ArgumentOutOfRangeException(name, x, $"{name} must be a finite number > 0.");
    }

    public static void AllFinite(IEnumerable<double> xs, string name)
    {
        if (xs.Any(x => !double.IsFinite(x))) throw new ArgumentException($"{name} must hold finite numbers only.", name);
    }

    public static void Vector(double[]? v, int n, string name)
    {
        NotNull(v, name);
        if (v!.Length != n) throw new ArgumentException($"{name} must have {n} entries, got {v.Length}.", name);
        AllFinite(v, name);
    }

    public static void Matrix(double[,]? a, int rows, int cols, string name)
    {
        NotNull(a, name);
        if (a!.GetLength(0) != rows || a.GetLength(1) != cols)
            throw new ArgumentException($"{name} must be {rows}x{cols}, got {a.GetLength(0)}x{a.GetLength(1)}.", name);
        AllFinite(a.Cast<double>(), name);
    }

    /// <summary>A jagged matrix: no null row, every row of the same length (of <paramref name="cols"/> when given).</summary>
    public static int Rows(double[][]? rows, string name, int? cols = null, bool allowEmpty = false)
    {
        NotNull(rows, name);
        if (rows!.Length == 0 && !allowEmpty) throw new ArgumentException($"{name} must have at least one row.", name);
        for (var i = 0; i < rows.Length; i++)
        {
            if (rows[i] is null) throw new ArgumentNullException(name, $"{name}[{i}] is null.");
            var want = cols ?? rows[0].Length;
            if (rows[i].Length != want)
                throw new ArgumentException($"every row of {name} must have length {want}; {name}[{i}] has {rows[i].Length}.", name);
            AllFinite(rows[i], name);
        }
        return rows.Length == 0 ? 0 : rows[0].Length;
    }

    public static void Defined<TEnum>(TEnum value, string name) where TEnum : struct, Enum
    {
        if (!Enum.IsDefined(value))
            throw new ArgumentOutOfRangeException(name, value, $"{name} is not a defined {typeof(TEnum).Name} value.");
    }

    /// <summary>Run the work under the facade's contract: cancellation (before, during or just after) throws
    /// OperationCanceledException, and an AggregateException is unwrapped to its first inner exception.</summary>
    public static T Run<T>(Func<T> work, CancellationToken ct)
    {
        ct.ThrowIfCancellationRequested();
        T result;
        try
        {
            result = work();
        }
        catch (AggregateException e)
        {
            var inner = e.Flatten().InnerExceptions;
            if (ct.IsCancellationRequested && inner.All(x => x is OperationCanceledException))
                throw new OperationCanceledException(ct);
            ExceptionDispatchInfo.Capture(inner.Count > 0 ? inner[0] : e).Throw();
            throw;
        }
        ct.ThrowIfCancellationRequested();
        return result;
    }
}
