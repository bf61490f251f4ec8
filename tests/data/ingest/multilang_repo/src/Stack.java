package org.example.collections;

import java.util.ArrayList;
import java.util.EmptyStackException;
import java.util.List;

/** A simple array-backed LIFO stack. */
public class Stack<T> {
    private final List<T> items = new ArrayList<>();

    /**
     * Pushes an item onto the top of this stack.
     *
     * @param item the item to push
     */
    public void push(T item) {
        items.add(item);
    }

    /**
     * Removes the item at the top of this stack and returns it.
     *
     * @throws EmptyStackException if the stack is empty
     */
    public T pop() {
        if (items.isEmpty()) {
            throw new EmptyStackException();
        }
        return items.remove(items.size() - 1);
    }

    // Number of items currently on the stack.
    public int size() {
        return items.size();
    }
}
